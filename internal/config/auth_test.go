package config

import (
	"strings"
	"testing"
)

const authYAML = `
hostname: mx.example.com
dns:
  servers: ["127.0.0.53:53"]
  timeout: 2s
dkim:
  keys:
    - {domain: example.com, selector: postern2026, key: "file:/etc/postern/dkim.pem"}
identities:
  - {name: internet, networks: ["0.0.0.0/0", "::/0"], internet: true}
dsn:
  dkim_sign: true
routes:
  - name: quarantine
    match: {dmarc: [fail], recipients: ["*"]}
    directory: {path: quarantine}
  - name: app
    match: {recipients: ["*@example.com"], spf: [pass, none]}
    relay: {type: smtp, addr: "smtp.example.net:587", dkim_sign: true}
`

func TestAuthKeysParse(t *testing.T) {
	t.Parallel()
	c, err := Parse("test", []byte(authYAML), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DNS.Servers) != 1 || c.DNS.Timeout.D().Seconds() != 2 || len(c.DKIM.Keys) != 1 || !c.DSN.DKIMSign ||
		!c.Identities[0].Internet || c.Routes[0].Match.DMARC[0] != "fail" || !c.Routes[1].Relay.DKIMSign {
		t.Fatalf("parsed %+v", c)
	}
	if !c.hasDKIMKey("mx.example.com") || c.hasDKIMKey("example.org") || c.hasDKIMKey("badexample.com") {
		t.Error("hasDKIMKey: a key signs its domain and subdomains only")
	}
}

func TestAuthKeyErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, old, new, want string }{
		{"server", `["127.0.0.53:53"]`, `["127.0.0.53"]`, `dns.servers[0]: "127.0.0.53" is not host:port`},
		{"timeout", "timeout: 2s", "timeout: 2m", "dns.timeout: 2m0s must be between 0"},
		{"domain", "domain: example.com", "domain: \"exa mple.com\"", `dkim.keys[0].domain: "exa mple.com" is not a domain name`},
		{"selector", "selector: postern2026", "selector: \"a/b\"", `dkim.keys[0].selector: "a/b" is not a selector`},
		{"key ref", `key: "file:/etc/postern/dkim.pem"`, `key: "file:"`, `dkim.keys[0].key: "file:" names no file`},
		{"dsn without key", "hostname: mx.example.com", "hostname: mx.example.org", "dsn.dkim_sign: no dkim.keys entry signs mx.example.org"},
		{"verdict", "dmarc: [fail]", "dmarc: [failed]", `routes[0].match.dmarc[0]: "failed" is not one of pass, fail, none, temperror, permerror`},
		{"dsn relay sign", "  dkim_sign: true\n", "  dkim_sign: true\n  relay: {type: file, path: dsn, dkim_sign: true}\n", "dsn.relay.dkim_sign: notices are signed by dsn.dkim_sign"},
		{"relay without keys", "    - {domain: example.com, selector: postern2026, key: \"file:/etc/postern/dkim.pem\"}\n", "", "routes[1].relay.dkim_sign: is set but dkim.keys is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(authYAML, c.old) {
				t.Fatalf("case edits %q, not in the config", c.old)
			}
			_, err := Parse("test", []byte(strings.Replace(authYAML, c.old, c.new, 1)), noenv)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("want %q, got %v", c.want, err)
			}
		})
	}
	// A route may match on verdicts alone.
	only := strings.Replace(authYAML, "match: {dmarc: [fail], recipients: [\"*\"]}", "match: {dmarc: [fail]}", 1)
	if _, err := Parse("test", []byte(only), noenv); err != nil {
		t.Errorf("a route matching on dmarc alone: %v", err)
	}
}
