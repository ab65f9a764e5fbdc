package app_test

import (
	"net"
	"os/exec"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/config"
)

// sendAsGateway boots the one-machine gateway for a scanner on loopback
// whose mail leaves through Microsoft 365 as mailbox@contoso.com (with its
// alias domain), or to a directory for the LAN's own senders. A route for
// another identity, sending as someone else, must not count for it.
func sendAsGateway(t *testing.T, refuse bool) string {
	t.Helper()
	cfg := testConfig(t, "http://127.0.0.1:9/unused")
	cfg.Identities = []config.Identity{{Name: "scan", Networks: []string{"127.0.0.0/8"}, AllowPlaintext: true, RefuseUndeliverableSenders: refuse}}
	graph := func(mailbox string, also ...string) *config.Relay {
		return &config.Relay{Type: "graph", SendAs: mailbox, SendAsAlso: also, BaseURL: "http://127.0.0.1:9/v1.0",
			OAuth: &config.OAuth{Provider: "entra", Tenant: "contoso.onmicrosoft.com", ClientID: "11111111-2222-3333-4444-555555555555",
				ClientSecret: "app-s3cret", TokenURL: "http://127.0.0.1:9/token"}}
	}
	cfg.Routes = []config.Route{
		{Name: "other", Match: config.Match{Recipients: []string{"*@contoso.com"}, Identities: []string{"copier"}}, Relay: graph("copier@contoso.com")},
		{Name: "m365", Match: config.Match{Recipients: []string{"*@contoso.com"}}, Relay: graph("mailbox@contoso.com", "*@alerts.contoso.com")},
		{Name: "files", Match: config.Match{Recipients: []string{"*@files.test"}, Senders: []string{"*@lan.test"}}, Directory: &config.Directory{Path: "outbox"}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return boot(t, cfg).SMTPAddrs()[0].String()
}

// want is one command's expected reply: 250 or an exact refusal.
type want struct {
	code int
	enh  smtp.EnhancedCode
	text string
}

var ok250 = want{code: 250}

func check(t *testing.T, what string, err error, w want) {
	t.Helper()
	if w.code == 250 {
		if err != nil {
			t.Errorf("%s: %v, want 250", what, err)
		}
		return
	}
	var se *smtp.SMTPError
	if !asSMTPError(err, &se) {
		t.Errorf("%s: %v, want %d %v %q", what, err, w.code, w.enh, w.text)
		return
	}
	if se.Code != w.code || se.EnhancedCode != w.enh || se.Message != w.text {
		t.Errorf("%s: %d %v %q, want %d %v %q", what, se.Code, se.EnhancedCode, se.Message, w.code, w.enh, w.text)
	}
}

func TestRefuseUndeliverableSenders(t *testing.T) {
	t.Parallel()
	refusedMail := want{550, smtp.EnhancedCode{5, 7, 1}, "Sender address rejected: mail is sent only as <mailbox@contoso.com>"}
	refusedRcpt := want{550, smtp.EnhancedCode{5, 7, 1}, "Sender address rejected for this recipient: its mail is sent only as <mailbox@contoso.com>"}
	noRoute := want{550, smtp.EnhancedCode{5, 1, 1}, "Recipient address rejected: mailbox unavailable"}
	type rcpt struct {
		to   string
		want want
	}
	for _, tc := range []struct {
		name   string
		refuse bool
		from   string
		mail   want
		rcpts  []rcpt
	}{
		{"junk sender refused at MAIL", true, "scanner@printer.local", refusedMail, nil},
		{"the mailbox, any case", true, "Mailbox@CONTOSO.com", ok250, []rcpt{{"boss@contoso.com", ok250}, {"x@files.test", noRoute}}},
		{"send_as_also", true, "fire-panel@alerts.contoso.com", ok250, []rcpt{{"boss@contoso.com", ok250}}},
		{"a LAN sender: its own route yes, Microsoft 365 no", true, "dev@lan.test", ok250, []rcpt{{"x@files.test", ok250}, {"boss@contoso.com", refusedRcpt}}},
		{"null sender never refused", true, "", ok250, []rcpt{{"boss@contoso.com", ok250}}},
		{"without the option nothing is refused", false, "scanner@printer.local", ok250, []rcpt{{"boss@contoso.com", ok250}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := smtp.Dial(sendAsGateway(t, tc.refuse))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("scanner.lan"); err != nil {
				t.Fatal(err)
			}
			check(t, "MAIL FROM:<"+tc.from+">", c.Mail(tc.from, nil), tc.mail)
			for _, r := range tc.rcpts {
				check(t, "RCPT TO:<"+r.to+">", c.Rcpt(r.to, nil), r.want)
			}
			if err := c.Reset(); err != nil {
				t.Errorf("RSET after a refusal: %v", err)
			}
		})
	}
}

// pyDevice is a device with a junk sender, as Python's smtplib speaks: it
// prints each reply line as the wire carried it.
const pyDevice = `
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)
s.ehlo("scanner-3f")
for frm, rcpt in (("scanner@printer.local", None), ("dev@lan.test", "boss@contoso.com")):
    code, text = s.mail(frm)
    print(code, text.decode())
    if rcpt:
        code, text = s.rcpt(rcpt)
        print(code, text.decode())
    s.rset()
s.quit()
`

// The refusals reach a client as whole RFC 5321 reply lines with their
// RFC 3463 codes, the mailbox named.
func TestRefuseUndeliverableSendersSmtplib(t *testing.T) {
	t.Parallel()
	py := requireTool(t, "python3")
	host, port, _ := net.SplitHostPort(sendAsGateway(t, true))
	out, err := exec.Command(py, "-c", pyDevice, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	want := "550 5.7.1 Sender address rejected: mail is sent only as <mailbox@contoso.com>\n" +
		"250 2.1.0 Sender OK\n" +
		"550 5.7.1 Sender address rejected for this recipient: its mail is sent only as <mailbox@contoso.com>\n"
	if string(out) != want {
		t.Errorf("smtplib saw:\n%s\nwant:\n%s", out, want)
	}
}
