package config

import (
	"bytes"
	"strings"
	"testing"
)

func TestSendsOnlyAs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		r    Relay
		want bool
	}{
		{Relay{Type: "graph", SendAs: "mb@contoso.com"}, true},
		{Relay{Type: "gmail", SendAs: "mb@example.com", From: "keep"}, true},
		{Relay{Type: "graph", SendAs: "mb@contoso.com", From: "rewrite"}, false},
		{Relay{Type: "smtp", AuthMechanism: "XOAUTH2", Username: "mb@contoso.com"}, true},
		{Relay{Type: "smtp", AuthMechanism: "xoauth2", Username: "mb@contoso.com", From: "rewrite"}, false},
		{Relay{Type: "smtp", AuthMechanism: "plain", Username: "u", SendAs: "mb@contoso.com"}, false},
		{Relay{Type: "ses"}, false},
	} {
		if got := c.r.SendsOnlyAs(); got != c.want {
			t.Errorf("%+v: SendsOnlyAs %v, want %v", c.r, got, c.want)
		}
	}
}

func TestDescribePolicyRefuseUndeliverable(t *testing.T) {
	t.Parallel()
	cfg := Default()
	cfg.Identities = []Identity{
		{Name: "scan", Networks: []string{"10.0.0.0/8"}, RefuseUndeliverableSenders: true},
		{Name: "app", Networks: []string{"10.1.0.0/16"}},
	}
	cfg.Routes = []Route{
		{Name: "m365", Match: Match{Recipients: []string{"*"}}, Relay: &Relay{Type: "graph", SendAs: "mb@contoso.com", SendAsAlso: []string{"*@alerts.contoso.com"}}},
		{Name: "gw", Match: Match{Recipients: []string{"*"}}, Relay: &Relay{Type: "gmail", SendAs: "gw@example.com", From: "rewrite"}},
	}
	var b bytes.Buffer
	cfg.DescribePolicy(&b)
	out := b.String()
	// scan is described first, so its lines come before identity app's.
	want := "  may send as: any\n  senders no route could deliver: refused at MAIL, and at RCPT where the recipient's route cannot (550 5.7.1); route m365 sends only as mb@contoso.com and *@alerts.contoso.com\n"
	if i := strings.Index(out, want); i < 0 || i > strings.Index(out, "identity app:") {
		t.Errorf("policy:\n%s\nwant identity scan to hold:\n%s", out, want)
	}
	if strings.Count(out, "senders no route could deliver") != 1 {
		t.Errorf("the check is described for an identity without it:\n%s", out)
	}
	if strings.Contains(out, "route gw sends only") {
		t.Errorf("a From-rewriting relay is described as sending only as its mailbox:\n%s", out)
	}
}
