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
	if got := r.SecretRefs(); len(got) != 2 || got[1] != "env:POSTERN_M365_SECRET" {
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
		{"unknown provider", "provider: entra", "provider: google", `routes[0].relay.oauth.provider: "google" is not one of entra (google comes later)`},
		{"no provider", "provider: entra", "", `routes[0].relay.oauth.provider: "" is not one of entra`},
		{"token url", "provider: entra", "provider: entra\n        token_url: login.example", `routes[0].relay.oauth.token_url: "login.example" is not an http(s) URL`},
		{"two scopes", "provider: entra", "provider: entra\n        scope: \"a b\"", `routes[0].relay.oauth.scope: "a b" has white space`},
		{"not smtp", "type: smtp", "type: ses", "routes[0].relay.oauth: applies to type: smtp with auth_mechanism: xoauth2 only"},
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
