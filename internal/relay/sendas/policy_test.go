package sendas

import (
	"testing"

	"github.com/postern/postern/internal/config"
)

func policyConfig() *config.Config {
	cfg := config.Default()
	m365 := &config.Relay{Type: "graph", SendAs: "mb@contoso.com", SendAsAlso: []string{"*@alerts.contoso.com"}}
	cfg.Routes = []config.Route{
		// Only for identity copier: never counts for scan.
		{Name: "copier", Match: config.Match{Identities: []string{"copier"}}, Relay: &config.Relay{Type: "gmail", SendAs: "copier@example.com"}},
		// A header route that may take contoso mail first, as Accepts allows.
		{Name: "tagged", Match: config.Match{Recipients: []string{"*@contoso.com"}, Headers: map[string]string{"X-Tag": "hook"}}, Webhook: &config.Webhook{URL: "http://127.0.0.1:9/"}},
		{Name: "m365", Match: config.Match{Recipients: []string{"*@contoso.com", "*@fabrikam.example"}}, Relay: m365},
		{Name: "xoauth", Match: config.Match{Recipients: []string{"*@gmail.example"}}, Relay: &config.Relay{Type: "smtp", AuthMechanism: "xoauth2", Username: "relay@example.com"}},
		{Name: "rewrite", Match: config.Match{Recipients: []string{"*@rewrite.example"}}, Relay: &config.Relay{Type: "graph", SendAs: "mb@contoso.com", From: "rewrite"}},
		{Name: "blocked", Match: config.Match{Recipients: []string{"*@blocked.example"}}, Reject: true},
		{Name: "lan", Match: config.Match{Recipients: []string{"*@files.test"}, Senders: []string{"*@lan.test"}}, Directory: &config.Directory{Path: "x"}},
	}
	return cfg
}

func TestPolicyRcpt(t *testing.T) {
	t.Parallel()
	p, err := NewPolicy(policyConfig(), "scan")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		rcpt, sender string
		ok           bool
		mailbox      string
	}{
		{"a@fabrikam.example", "junk@printer.local", false, "mb@contoso.com"},
		{"a@fabrikam.example", "MB@Contoso.COM", true, ""},
		{"a@fabrikam.example", "fire@alerts.contoso.com", true, ""},
		{"a@fabrikam.example", "fire@alerts.contoso.com.evil", false, "mb@contoso.com"},
		{"a@fabrikam.example", "", true, ""},
		// The header route might take it after DATA and delivers any sender.
		{"a@contoso.com", "junk@printer.local", true, ""},
		{"a@gmail.example", "junk@printer.local", false, "relay@example.com"},
		{"a@gmail.example", "relay@example.com", true, ""},
		{"a@rewrite.example", "junk@printer.local", true, ""},
		// Reject and unrouted recipients are the route table's to refuse.
		{"a@blocked.example", "junk@printer.local", true, ""},
		{"a@nowhere.example", "junk@printer.local", true, ""},
		{"a@files.test", "dev@lan.test", true, ""},
	} {
		mailbox, ok := p.Rcpt(c.rcpt, c.sender)
		if ok != c.ok || mailbox != c.mailbox {
			t.Errorf("Rcpt(%q, %q) = %q, %v; want %q, %v", c.rcpt, c.sender, mailbox, ok, c.mailbox, c.ok)
		}
	}
}

func TestPolicyMail(t *testing.T) {
	t.Parallel()
	cfg := policyConfig()
	p, err := NewPolicy(cfg, "scan")
	if err != nil {
		t.Fatal(err)
	}
	// With the webhook, rewrite and reject routes, any sender has a route.
	if mailbox, ok := p.Mail("junk@printer.local"); !ok {
		t.Errorf("Mail refused %q with routes that deliver any sender", mailbox)
	}

	// Only relays that send as a mailbox, and one for LAN senders.
	cfg.Routes = append(cfg.Routes[:1], cfg.Routes[2], cfg.Routes[3], cfg.Routes[6])
	if p, err = NewPolicy(cfg, "scan"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sender  string
		ok      bool
		mailbox string
	}{
		{"junk@printer.local", false, "mb@contoso.com"},
		{"mb@contoso.com", true, ""},
		{"relay@EXAMPLE.com", true, ""},
		{"x@alerts.contoso.com", true, ""},
		{"dev@lan.test", true, ""},
		{"", true, ""},
	} {
		mailbox, ok := p.Mail(c.sender)
		if ok != c.ok || mailbox != c.mailbox {
			t.Errorf("Mail(%q) = %q, %v; want %q, %v", c.sender, mailbox, ok, c.mailbox, c.ok)
		}
	}
	// For copier, its own route counts too.
	if p, err = NewPolicy(cfg, "copier"); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Mail("copier@example.com"); !ok {
		t.Errorf("copier's own mailbox refused for copier")
	}
	// No route at all for the sender: RCPT refuses, not MAIL.
	cfg.Routes = cfg.Routes[3:]
	if p, err = NewPolicy(cfg, "scan"); err != nil {
		t.Fatal(err)
	}
	if mailbox, ok := p.Mail("junk@printer.local"); !ok {
		t.Errorf("Mail refused %q though no route takes the sender", mailbox)
	}
}

func TestNewPolicyBadPattern(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Routes = []config.Route{{Name: "m365", Relay: &config.Relay{Type: "graph", SendAs: "mb@contoso.com", SendAsAlso: []string{"a\x01b"}}}}
	if _, err := NewPolicy(cfg, "scan"); err == nil {
		t.Error("NewPolicy took a send_as_also pattern with a control character")
	}
}
