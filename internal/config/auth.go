package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Verdict values route matches take, per check (RFC 8601 result names).
var (
	spfResults   = []string{"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"}
	dkimResults  = []string{"pass", "fail", "policy", "neutral", "none", "temperror", "permerror"}
	dmarcResults = []string{"pass", "fail", "none", "temperror", "permerror"}
)

// dkimLabel is a DNS label as DKIM selectors and domains use them.
var dkimLabel = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$`)

func dnsName(s string) bool {
	labels := strings.Split(strings.TrimSuffix(s, "."), ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range labels {
		if !dkimLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// validateAuth checks dns, dkim and the sender-authentication keys of
// routes and dsn.
func validateAuth(c *Config, onAWS bool, bad func(key, format string, args ...any)) {
	for i, s := range c.DNS.Servers {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			bad(fmt.Sprintf("dns.servers[%d]", i), "%q is not host:port; write e.g. \"127.0.0.53:53\", or leave dns.servers out for the system's resolvers", s)
		}
	}
	if c.DNS.Timeout < 0 || c.DNS.Timeout.D() > 30*time.Second {
		bad("dns.timeout", "%s must be between 0 (the default, 3s) and 30s", c.DNS.Timeout.D())
	}
	seen := map[string]bool{}
	for i, k := range c.DKIM.Keys {
		key := fmt.Sprintf("dkim.keys[%d]", i)
		if !dnsName(k.Domain) {
			bad(key+".domain", "%q is not a domain name; write the domain of the From addresses signed, e.g. \"example.com\"", k.Domain)
		}
		if !dnsName(k.Selector) {
			bad(key+".selector", "%q is not a selector (DNS labels, e.g. \"postern2026\"); it names the TXT record <selector>._domainkey.<domain>", k.Selector)
		}
		id := strings.ToLower(k.Selector + "._domainkey." + k.Domain)
		if seen[id] {
			bad(key, "%s is listed twice; one key per domain and selector", id)
		}
		seen[id] = true
		checkSecret(key+".key", k.Key, onAWS, bad)
	}
	if c.DSN.Relay.DKIMSign {
		bad("dsn.relay.dkim_sign", "notices are signed by dsn.dkim_sign; move it there")
	}
	if c.DSN.DKIMSign {
		domain := c.DSN.Domain
		if domain == "" {
			domain = c.Hostname
		}
		if !c.hasDKIMKey(domain) {
			bad("dsn.dkim_sign", "no dkim.keys entry signs %s, the domain notices come from (MAILER-DAEMON@%s); add one (`gateway dkim-keygen %s SELECTOR`) or remove dkim_sign", domain, domain, domain)
		}
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Relay != nil && r.Relay.DKIMSign && len(c.DKIM.Keys) == 0 {
			bad(key+".relay.dkim_sign", "is set but dkim.keys is empty; add the From domain's key (`gateway dkim-keygen DOMAIN SELECTOR`) or remove dkim_sign")
		}
		for _, m := range []struct {
			name    string
			got     []string
			allowed []string
		}{{"spf", r.Match.SPF, spfResults}, {"dkim", r.Match.DKIM, dkimResults}, {"dmarc", r.Match.DMARC, dmarcResults}} {
			for j, v := range m.got {
				if !slices.Contains(m.allowed, v) {
					bad(fmt.Sprintf("%s.match.%s[%d]", key, m.name, j), "%q is not one of %s", v, strings.Join(m.allowed, ", "))
				}
			}
		}
	}
}

// hasDKIMKey reports whether some dkim key signs mail from domain: its
// own, or a parent domain's.
func (c *Config) hasDKIMKey(domain string) bool {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, k := range c.DKIM.Keys {
		kd := strings.ToLower(strings.TrimSuffix(k.Domain, "."))
		if d == kd || strings.HasSuffix(d, "."+kd) {
			return true
		}
	}
	return false
}
