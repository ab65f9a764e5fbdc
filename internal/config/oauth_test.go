package config

import (
	"strings"
	"testing"
)

// relayYAML is a route relaying through Exchange Online with XOAUTH2;
// each case edits it.
const relayYAML = `
routes:
  - name: m365
    match: {recipients: ["*"]}
    relay:
      type: smtp
      addr: "smtp.office365.com:587"
      auth_mechanism: xoauth2
      username: scanner@example.com
      oauth:
        provider: entra
        tenant: contoso.onmicrosoft.com
        client_id: 11111111-2222-3333-4444-555555555555
        client_secret: "env:POSTERN_M365_SECRET"
`

func TestOAuthRelayParses(t *testing.T) {
	t.Parallel()
	c, err := Parse("test", []byte(relayYAML), noenv)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Routes[0].Relay
	want := OAuth{Provider: "entra", Tenant: "contoso.onmicrosoft.com", ClientID: "11111111-2222-3333-4444-555555555555", ClientSecret: "env:POSTERN_M365_SECRET"}
	if r.OAuth == nil || *r.OAuth != want || r.Username != "scanner@example.com" {
		t.Fatalf("relay = %+v, oauth %+v; want %+v", r, r.OAuth, want)
	}
	if got := r.SecretRefs(); len(got) != 4 || got[1] != "env:POSTERN_M365_SECRET" {
		t.Errorf("SecretRefs = %q", got)
	}
	// The same under dsn.relay, with a Secrets Manager secret on AWS.
	dsn := awsBase + `
dsn:
  relay:
    type: smtp
    addr: "smtp.office365.com:587"
    auth_mechanism: XOAUTH2
    username: postmaster@example.com
    oauth: {provider: entra, tenant: t, client_id: c, client_secret: "secretsmanager:postern/m365", scope: "https://outlook.office365.com/.default", token_url: "https://login.microsoftonline.us/t/oauth2/v2.0/token"}
`
	if _, err := Parse("test", []byte(dsn), noenv); err != nil {
		t.Fatal(err)
	}
}

func TestOAuthRelayErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"no tenant", "tenant: contoso.onmicrosoft.com", "", "routes[0].relay.oauth.tenant: is empty; set the Entra directory (tenant) id"},
		{"no client id", "client_id: 11111111-2222-3333-4444-555555555555", "", "routes[0].relay.oauth.client_id: is empty; set the app registration's application (client) id"},
		{"no secret", `client_secret: "env:POSTERN_M365_SECRET"`, "", "routes[0].relay.oauth.client_secret: is empty; write the secret"},
		{"bad secret ref", `"env:POSTERN_M365_SECRET"`, `"env:"`, `routes[0].relay.oauth.client_secret: "env:" names no variable`},
		{"secrets manager off AWS", `"env:POSTERN_M365_SECRET"`, `"secretsmanager:postern/m365"`, "routes[0].relay.oauth.client_secret: secretsmanager: secrets are read at run time by the AWS functions"},
		{"no username", "username: scanner@example.com", "", "routes[0].relay.username: is empty; xoauth2 signs in as a mailbox"},
		{"password too", "username: scanner@example.com", "username: scanner@example.com\n      password: hunter2", "routes[0].relay.password: is set with auth_mechanism: xoauth2"},
		{"no oauth", "      oauth:\n        provider: entra\n        tenant: contoso.onmicrosoft.com\n        client_id: 11111111-2222-3333-4444-555555555555\n        client_secret: \"env:POSTERN_M365_SECRET\"\n", "", "routes[0].relay.oauth: is missing; xoauth2 needs oauth with provider: entra, tenant, client_id and client_secret"},
		{"oauth without xoauth2", "auth_mechanism: xoauth2", "auth_mechanism: plain", `routes[0].relay.oauth: is set but auth_mechanism is "plain"; set auth_mechanism: xoauth2`},
		{"oauth, no mechanism", "auth_mechanism: xoauth2", "", `routes[0].relay.oauth: is set but auth_mechanism is ""`},
		{"unknown provider", "provider: entra", "provider: okta", `routes[0].relay.oauth.provider: "okta" is not one of entra, google`},
		{"no provider", "provider: entra", "", `routes[0].relay.oauth.provider: "" is not one of entra, google`},
		{"google with entra keys", "provider: entra", "provider: google", "routes[0].relay.oauth.tenant: applies to provider: entra only"},
		{"google without key", "provider: entra", "provider: google", "routes[0].relay.oauth.service_account_key: is empty; write the secret"},
		{"secret and certificate", `client_secret: "env:POSTERN_M365_SECRET"`, "client_secret: \"env:POSTERN_M365_SECRET\"\n        certificate: file:/etc/postern/app.pem", "routes[0].relay.oauth.certificate: is set with client_secret"},
		{"certificate ref", `client_secret: "env:POSTERN_M365_SECRET"`, `certificate: "file:"`, `routes[0].relay.oauth.certificate: "file:" names no file`},
		{"entra with google key", `client_secret: "env:POSTERN_M365_SECRET"`, "client_secret: \"env:POSTERN_M365_SECRET\"\n        service_account_key: file:/k.json", "routes[0].relay.oauth.service_account_key: applies to provider: google only"},
		{"token url", "provider: entra", "provider: entra\n        token_url: login.example", `routes[0].relay.oauth.token_url: "login.example" is not an http(s) URL`},
		{"two scopes", "provider: entra", "provider: entra\n        scope: \"a b\"", `routes[0].relay.oauth.scope: "a b" has white space`},
		{"not smtp", "type: smtp", "type: ses", "routes[0].relay.oauth: applies to type: graph, gmail, or smtp with auth_mechanism: xoauth2 only"},
		{"bad send_as", "username: scanner@example.com", "username: scanner@example.com\n      send_as: \"Scanner <scanner@example.com>\"", "routes[0].relay.send_as: \"Scanner <scanner@example.com>\" is not a bare mail address"},
		{"bad from", "username: scanner@example.com", "username: scanner@example.com\n      from: replace", `routes[0].relay.from: "replace" is not one of keep, rewrite`},
		{"original_from without rewrite", "username: scanner@example.com", "username: scanner@example.com\n      original_from: header", "routes[0].relay.original_from: applies with from: rewrite only"},
		{"bad original_from", "username: scanner@example.com", "username: scanner@example.com\n      from: rewrite\n      original_from: sender", `routes[0].relay.original_from: "sender" is not one of reply-to, header`},
		{"bad alias", "username: scanner@example.com", "username: scanner@example.com\n      send_as_also: [\"a b\"]", `routes[0].relay.send_as_also[0]: "a b" is not an address pattern`},
		{"sent items off graph", "username: scanner@example.com", "username: scanner@example.com\n      save_to_sent_items: true", "routes[0].relay.save_to_sent_items: applies to type: graph only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(relayYAML, c.old) {
				t.Fatalf("case edits %q, not in the config", c.old)
			}
			_, err := Parse("test", []byte(strings.Replace(relayYAML, c.old, c.new, 1)), noenv)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("want %q, got %v", c.want, err)
			}
		})
	}
}

// apiYAML relays through Graph and the Gmail API; each case edits it.
const apiYAML = `
routes:
  - name: m365
    match: {identities: [scanner]}
    relay:
      type: graph
      send_as: scanner@contoso.com
      from: rewrite
      original_from: header
      send_as_also: ["*@contoso.com"]
      save_to_sent_items: true
      oauth:
        provider: entra
        tenant: contoso.onmicrosoft.com
        client_id: 11111111-2222-3333-4444-555555555555
        certificate: "file:/etc/postern/m365.pem"
  - name: google
    match: {recipients: ["*"]}
    relay:
      type: gmail
      send_as: printer@example.org
      base_url: "http://127.0.0.1:9/"
      oauth:
        provider: google
        service_account_key: "file:/etc/postern/sa.json"
`

func TestAPIRelaysParse(t *testing.T) {
	t.Parallel()
	c, err := Parse("test", []byte(apiYAML), noenv)
	if err != nil {
		t.Fatal(err)
	}
	g, m := c.Routes[0].Relay, c.Routes[1].Relay
	if g.Mailbox() != "scanner@contoso.com" || g.DefaultScope() != GraphScope || !g.SaveToSentItems || g.From != "rewrite" ||
		g.OAuth.Certificate != "file:/etc/postern/m365.pem" || g.SecretRefs()[2] != "file:/etc/postern/m365.pem" {
		t.Errorf("graph relay = %+v", g)
	}
	if m.Mailbox() != "printer@example.org" || m.DefaultScope() != GmailSendScope || m.OAuth.ServiceAccountKey != "file:/etc/postern/sa.json" {
		t.Errorf("gmail relay = %+v", m)
	}
	x := &Relay{Type: "smtp", Username: "a@b.example", AuthMechanism: "xoauth2", OAuth: &OAuth{Provider: "google"}}
	if x.Mailbox() != "a@b.example" || x.DefaultScope() != GoogleMailScope {
		t.Errorf("smtp with google: mailbox %q, scope %q", x.Mailbox(), x.DefaultScope())
	}
	x.SendAs = "c@b.example"
	if x.Mailbox() != "c@b.example" {
		t.Errorf("send_as does not win over username: %q", x.Mailbox())
	}
}

func TestAPIRelayErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"no send_as", "      send_as: scanner@contoso.com\n", "", "routes[0].relay.send_as: is empty; graph sends as one mailbox"},
		{"gmail without send_as", "      send_as: printer@example.org\n", "", "routes[1].relay.send_as: is empty; gmail sends as one mailbox"},
		{"smtp keys", "type: graph\n", "type: graph\n      addr: smtp.office365.com:587\n      password: x\n", "routes[0].relay.addr: applies to type: smtp only"},
		{"graph with google", "provider: entra", "provider: google", "routes[0].relay.oauth.provider: \"google\" does not serve type: graph; it takes provider: entra"},
		{"gmail with entra", "provider: google", "provider: entra", "routes[1].relay.oauth.provider: \"entra\" does not serve type: gmail; it takes provider: google"},
		{"no oauth", "      oauth:\n        provider: google\n        service_account_key: \"file:/etc/postern/sa.json\"\n", "", "routes[1].relay.oauth: is missing; gmail needs oauth with provider: google and service_account_key"},
		{"no key", `service_account_key: "file:/etc/postern/sa.json"`, "", "routes[1].relay.oauth.service_account_key: is empty"},
		{"bad base url", `base_url: "http://127.0.0.1:9/"`, "base_url: gmail.example", `routes[1].relay.base_url: "gmail.example" is not an http(s) URL`},
		{"sent items on gmail", "type: gmail\n", "type: gmail\n      save_to_sent_items: true\n", "routes[1].relay.save_to_sent_items: applies to type: graph only"},
		{"unknown type", "type: gmail\n", "type: gmial\n", `routes[1].relay.type: "gmial" is not one of smtp, ses, graph, gmail, file`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(apiYAML, c.old) {
				t.Fatalf("case edits %q, not in the config", c.old)
			}
			_, err := Parse("test", []byte(strings.Replace(apiYAML, c.old, c.new, 1)), noenv)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("want %q, got %v", c.want, err)
			}
		})
	}
}
