package relayfn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/oauthtok/googletest"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/gmailrelay/gmailtest"
)

// googleKey writes acct's key file and returns its path.
func googleKey(t *testing.T, g *googletest.Server, acct *googletest.Account) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(p, g.KeyJSON(acct), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A gmail route from config sends through the Gmail API as its mailbox,
// with a token the service account got for that mailbox and gmail.send.
func TestGmailRouteFromConfig(t *testing.T) {
	g := googletest.New(t)
	gm := gmailtest.New(t, g)
	acct := g.NewAccount(t, "postern@proj.iam.gserviceaccount.com")
	g.Delegate(acct, config.GmailSendScope)
	g.AddUser("printer@example.org")
	yaml := `
routes:
  - name: google
    match: {recipients: ["*"]}
    relay:
      type: gmail
      send_as: printer@example.org
      base_url: "` + gm.URL + `"
      oauth: {provider: google, service_account_key: "file:` + googleKey(t, g, acct) + `"}
`
	tr := firstRouteTransport(t, yaml)
	body := "From: printer@example.org\r\nTo: accounts@example.com\r\nSubject: scan\r\n\r\npage\r\n"
	res, err := send(t, tr, body)
	delivered(t, res, err)
	sent := gm.Sent()
	if len(sent) != 1 || !strings.HasSuffix(string(sent[0].Raw), "\r\n\r\npage\r\n") {
		t.Fatalf("sent %+v", sent)
	}
	reqs := g.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d token requests", len(reqs))
	}
}

// SMTP XOAUTH2 to Gmail: the token is the service account's for the
// mailbox (username) with https://mail.google.com/, the scope Gmail's SMTP
// server demands.
func TestGoogleXOAUTH2FromConfig(t *testing.T) {
	g := googletest.New(t)
	acct := g.NewAccount(t, "postern@proj.iam.gserviceaccount.com")
	g.Delegate(acct, config.GoogleMailScope)
	g.AddUser("printer@example.org")
	m := newM365(t, nil, "printer@example.org")
	m.accepts = func(tok string) bool {
		is, ok := g.Lookup(tok)
		return ok && is.Subject == "printer@example.org" && is.Scope == config.GoogleMailScope
	}
	yaml := `
routes:
  - name: google
    match: {recipients: ["*"]}
    relay:
      type: smtp
      addr: "` + m.addr + `"
      ca_file: "` + m.caFile + `"
      auth_mechanism: xoauth2
      username: printer@example.org
      oauth: {provider: google, service_account_key: "file:` + googleKey(t, g, acct) + `"}
`
	tr := firstRouteTransport(t, yaml)
	res, err := send(t, tr, "Subject: scan\r\n\r\npage\r\n")
	delivered(t, res, err)
	if _, txs := m.snapshot(); len(txs) != 1 {
		t.Fatalf("%d transactions", len(txs))
	}
}

// firstRouteTransport builds the transport of the first route of the
// configuration yaml, as the relay stage would.
func firstRouteTransport(t *testing.T, yaml string) relay.Transport {
	t.Helper()
	cfg, err := config.Parse("test", []byte(yaml), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	tr, err := NewTransport(context.Background(), cfg, "routes "+r.Name+" relay", r.Relay, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
