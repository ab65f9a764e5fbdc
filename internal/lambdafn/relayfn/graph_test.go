package relayfn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
)

// A graph route from config whose app signs in with a certificate (PEM
// in a file) sends as its mailbox with a Graph token Entra issued on a
// signed client assertion.
func TestGraphRouteWithCertificate(t *testing.T) {
	ent := entratest.New(t)
	pem, cert := entratest.NewCertificate(t)
	const tenant, client = "certs.onmicrosoft.com", "22222222-3333-4444-5555-666666666666"
	ent.AddCertificate(tenant, client, cert)
	g := graphtest.New(t, ent.Valid)
	pemFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(pemFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `
routes:
  - name: m365
    match: {recipients: ["*"]}
    relay:
      type: graph
      send_as: scanner@contoso.com
      save_to_sent_items: true
      base_url: "` + g.URL + `"
      oauth:
        provider: entra
        tenant: ` + tenant + `
        client_id: ` + client + `
        certificate: "file:` + pemFile + `"
        token_url: "` + ent.TokenURL(tenant) + `"
`
	tr := firstRouteTransport(t, yaml)
	body := "From: scanner@contoso.com\r\nTo: accounts@example.com\r\nSubject: scan\r\n\r\npage\r\n"
	res, err := send(t, tr, body)
	delivered(t, res, err)

	toks := ent.Requests()
	if len(toks) != 1 || toks[0].Form.Get("client_secret") != "" || toks[0].Assertion == nil ||
		toks[0].Form.Get("scope") != config.GraphScope {
		t.Fatalf("token requests %+v", toks)
	}
	var sent int
	for _, r := range g.Requests() {
		if strings.HasSuffix(r.Path, "/users/scanner@contoso.com/sendMail") && ent.Valid(r.Token) && strings.HasSuffix(string(r.MIME), body) {
			sent++
		}
	}
	if sent != 1 {
		t.Fatalf("%d sendMail calls with the message and a valid token; requests %+v", sent, g.Requests())
	}
}

// from: rewrite on a route: Graph gets the copy with From the mailbox and
// the device's address in Reply-To; the Received field and body are the
// stored bytes.
func TestGraphRouteRewritesFrom(t *testing.T) {
	ent := entratest.New(t)
	const tenant, client = "rewrite.onmicrosoft.com", "33333333-3333-4444-5555-666666666666"
	ent.AddApp(tenant, client, "app-s3cret")
	g := graphtest.New(t, ent.Valid)
	yaml := `
routes:
  - name: m365
    match: {recipients: ["*"]}
    relay:
      type: graph
      send_as: scanner@contoso.com
      from: rewrite
      save_to_sent_items: true
      base_url: "` + g.URL + `"
      oauth: {provider: entra, tenant: ` + tenant + `, client_id: ` + client + `, client_secret: app-s3cret, token_url: "` + ent.TokenURL(tenant) + `"}
`
	tr := firstRouteTransport(t, yaml)
	body := "Received: from scanner-3f by gw.test; Sat, 5 Dec 2026 05:00:00 +0000\r\nFrom: Scanner 3F <scan@printer.local>\r\n" +
		"To: accounts@example.com\r\nSubject: scan\r\n\r\npage\r\n"
	res, err := send(t, tr, body)
	delivered(t, res, err)
	var mime string
	for _, r := range g.Requests() {
		if strings.HasSuffix(r.Path, "/sendMail") {
			mime = string(r.MIME)
		}
	}
	for _, want := range []string{"Received: from scanner-3f by gw.test; Sat, 5 Dec 2026 05:00:00 +0000\r\n",
		"From: \"Scanner 3F\" <scanner@contoso.com>\r\n", "Reply-To: \"Scanner 3F\" <scan@printer.local>\r\n", "\r\n\r\npage\r\n"} {
		if !strings.Contains(mime, want) {
			t.Errorf("Graph got no %q in:\n%s", want, mime)
		}
	}
	if strings.Contains(mime, "From: Scanner 3F <scan@printer.local>") {
		t.Errorf("the device's From was sent:\n%s", mime)
	}
}

// The API transports' memory gate is half a Lambda function's memory,
// 1 GiB elsewhere.
func TestAPIMemoryBudget(t *testing.T) {
	for in, want := range map[string]int64{"256": 128 << 20, "1024": 512 << 20, "": 1 << 30, "x": 1 << 30} {
		if got := apiMemoryBudget(in); got != want {
			t.Errorf("apiMemoryBudget(%q) = %d, want %d", in, got, want)
		}
	}
}
