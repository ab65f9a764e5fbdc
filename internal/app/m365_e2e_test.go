package app_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
)

// pyLegacyDevice is an old scanner: TLS 1.0 only, AUTH LOGIN with the
// server's Username:/Password: prompts, a junk envelope sender.
const pyLegacyDevice = `
import smtplib, ssl, sys
host, port, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1
ctx.maximum_version = ssl.TLSVersion.TLSv1
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
s = smtplib.SMTP(host, port, timeout=20)
s.ehlo("scanner-3f")
s.starttls(context=ctx)
print("tls", s.sock.version())
s.ehlo("scanner-3f")
s.user, s.password = "scanner3f", "1234"
code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
print("auth", code)
msg = open(sys.argv[4], "rb").read()
s.mail("scan@printer.local")
s.rcpt(rcpt)
code, text = s.data(msg)
print("data", code, text.decode())
s.quit()
`

var tenants atomic.Int64

// m365Gateway boots the one-machine gateway as a site bridging legacy
// devices to Microsoft 365: a TLS 1.0 listener, a password identity with
// an owner, and a route relaying by Graph as one mailbox with tokens from
// Entra ID (both stand-ins on loopback).
func m365Gateway(t *testing.T, saveToSentItems bool) (cfg *config.Config, addr string, ent *entratest.Server, g *graphtest.Server) {
	t.Helper()
	ent = entratest.New(t)
	// The process shares one token cache, keyed by tenant, app and scope:
	// a tenant per test keeps parallel tests' stand-ins apart.
	tenant := fmt.Sprintf("t%d.onmicrosoft.com", tenants.Add(1))
	ent.AddApp(tenant, "11111111-2222-3333-4444-555555555555", "app-s3cret")
	g = graphtest.New(t, ent.Valid)

	cfg = testConfig(t, "http://127.0.0.1:9/unused")
	h, err := bcrypt.GenerateFromPassword([]byte("1234"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listeners = []config.Listener{{Name: "legacy", Addr: "127.0.0.1:0", Mode: "submission", TLSMinVersion: "1.0"}}
	cfg.Identities = []config.Identity{{Name: "scanner3f", PasswordHash: string(h), Owner: "it@contoso.com"}}
	cfg.DSN.OwnerOnly = true
	cfg.Routes = []config.Route{{Name: "m365", Match: config.Match{Identities: []string{"scanner3f"}}, Relay: &config.Relay{
		Type: "graph", SendAs: "scanner@contoso.com", SaveToSentItems: saveToSentItems, BaseURL: g.URL, MaxAge: config.Duration(time.Minute),
		OAuth: &config.OAuth{Provider: "entra", Tenant: tenant, ClientID: "11111111-2222-3333-4444-555555555555",
			ClientSecret: "app-s3cret", TokenURL: ent.TokenURL(tenant)},
	}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	return cfg, a.SMTPAddrs()[0].String(), ent, g
}

// scan sends msg as the legacy device and returns the client's transcript.
func scan(t *testing.T, addr string, msg []byte) string {
	t.Helper()
	py := requireTool(t, "python3")
	f := filepath.Join(t.TempDir(), "scan.eml")
	if err := os.WriteFile(f, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(py, "-c", pyLegacyDevice, host, port, "accounts@fabrikam.example", f).CombinedOutput()
	if err != nil {
		t.Fatalf("device: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"tls TLSv1\n", "auth 235\n", "data 250 2.0.0 OK "} {
		if !strings.Contains(s, want) {
			t.Fatalf("device transcript lacks %q:\n%s", want, s)
		}
	}
	return s
}

const scanMsg = "From: Scanner 3F <scan@printer.local>\r\nTo: accounts@fabrikam.example\r\nSubject: Scan 0042\r\n" +
	"Message-ID: <0042@printer.local>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nScanned page attached.\r\n"

// A device that can only do TLS 1.0 and AUTH LOGIN gets 250, and the
// message leaves through Graph as the mailbox, with a token Entra issued
// for Graph, carrying the stored bytes (the gateway's Received field
// first) and the envelope recipient.
func TestLegacyDeviceToGraph(t *testing.T) {
	t.Parallel()
	_, addr, ent, g := m365Gateway(t, true)
	scan(t, addr, []byte(scanMsg))

	var sent []graphtest.Request
	deadline := time.Now().Add(30 * time.Second)
	for len(sent) == 0 {
		for _, r := range g.Requests() {
			if r.Method == "POST" && strings.HasSuffix(r.Path, "/sendMail") {
				sent = append(sent, r)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing sent through Graph; requests: %+v", g.Requests())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := sent[0]
	if r.Path != "/v1.0/users/scanner@contoso.com/sendMail" || r.ContentType != "text/plain" || !ent.Valid(r.Token) {
		t.Errorf("request %s %s, content type %q, token valid %v", r.Method, r.Path, r.ContentType, ent.Valid(r.Token))
	}
	if iss, ok := ent.Lookup(r.Token); !ok || iss.Scope != config.GraphScope {
		t.Errorf("token issued for %+v, want scope %s", iss, config.GraphScope)
	}
	if !bytes.HasPrefix(r.MIME, []byte("Received: ")) || !bytes.HasSuffix(r.MIME, []byte(scanMsg)) {
		t.Errorf("Graph got MIME that is not the stored message:\n%s", r.MIME)
	}
	if len(sent) != 1 {
		t.Errorf("sent %d times", len(sent))
	}
}

// Graph refuses the mailbox for good (the app may not send as it): the
// owner, who can fix it, gets a DSN with Graph's code and words; the
// device's junk sender gets nothing, and nothing is retried.
func TestGraphRefusalNotifiesOwner(t *testing.T) {
	t.Parallel()
	cfg, addr, _, g := m365Gateway(t, true)
	g.FailNext(graphtest.AccessDenied())
	scan(t, addr, []byte(scanMsg))

	dir := filepath.Join(cfg.DataDir, cfg.DSN.Relay.Path)
	var raw []byte
	deadline := time.Now().Add(30 * time.Second)
	for raw == nil {
		for _, f := range dsnFiles(dir) {
			raw, _ = os.ReadFile(filepath.Join(dir, f))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no DSN under %s; Graph requests: %d", dir, len(g.Requests()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := string(raw)
	for _, want := range []string{
		"X-Postern-Envelope-To: <it@contoso.com>\r\n", "Final-Recipient: rfc822; accounts@fabrikam.example",
		"Action: failed", "Status: 5.7.1", "ErrorAccessDenied", "Access is denied", "Subject: Scan 0042",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("DSN lacks %q:\n%s", want, s[:min(len(s), 1500)])
		}
	}
	if strings.Contains(s, "X-Postern-Envelope-To: <scan@printer.local>") {
		t.Error("the device's junk sender got the notice")
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(g.Requests()); n != 1 {
		t.Errorf("a permanent refusal was retried: %d requests", n)
	}
	if n := len(dsnFiles(dir)); n != 1 {
		t.Errorf("%d notices, want 1", n)
	}
}

// The default, no copy in Sent Items, goes by a draft made from the
// stored MIME and marked to be deleted once submitted; a scan with a 5 MiB
// PDF goes the same way, the PDF through an upload session, and what Graph
// sends carries the stored headers and the attachment's bytes.
func TestLegacyDeviceToGraphDraft(t *testing.T) {
	t.Parallel()
	_, addr, _, g := m365Gateway(t, false)
	pdf := bytes.Repeat([]byte("%PDF-1.4 scanned page \x00\x01\x02\xff\n"), 5<<20/32)
	var b bytes.Buffer
	b.WriteString("From: Scanner 3F <scan@printer.local>\r\nTo: accounts@fabrikam.example\r\nSubject: Scan 0043\r\n" +
		"Message-ID: <0043@printer.local>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nScanned document attached.\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=\"scan0043.pdf\"\r\nContent-Disposition: attachment; filename=\"scan0043.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(pdf)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b1--\r\n")
	scan(t, addr, b.Bytes())

	var sent []graphtest.Message
	deadline := time.Now().Add(60 * time.Second)
	for len(sent) == 0 {
		sent = g.Sent()
		if time.Now().After(deadline) {
			t.Fatalf("nothing sent through Graph; %d requests", len(g.Requests()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := sent[0]
	if m.Via != graphtest.CreateMessage || len(g.SentItems()) != 0 || len(g.Drafts()) != 0 {
		t.Errorf("sent via %s; %d in Sent Items, %d drafts left", m.Via, len(g.SentItems()), len(g.Drafts()))
	}
	if !strings.EqualFold(m.ExtendedProperties[graphtest.DeleteAfterSubmit], "true") {
		t.Errorf("the draft was not marked to be deleted after submission: %v", m.ExtendedProperties)
	}
	if !bytes.HasPrefix(m.MIME, []byte("Received: ")) || !bytes.Contains(m.MIME, []byte("Subject: Scan 0043\r\n")) {
		t.Errorf("the draft is not the stored message:\n%.600s", m.MIME)
	}
	if len(m.Attachments) != 1 || !bytes.Equal(m.Attachments[0].Content, pdf) || m.Attachments[0].Name != "scan0043.pdf" {
		t.Fatalf("attachments %d, want the PDF's bytes whole", len(m.Attachments))
	}
	var sessions int
	for _, r := range g.Requests() {
		if r.Endpoint == graphtest.CreateUploadSession {
			sessions++
		}
	}
	if sessions != 1 {
		t.Errorf("%d upload sessions, want 1 for the 5 MiB PDF", sessions)
	}
}
