package authcheck

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestSPF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dns.AddTXT("pass.example", "v=spf1 ip4:192.0.2.0/24 -all")
	e.dns.AddTXT("fail.example", "v=spf1 ip4:198.51.100.0/24 -all")
	e.dns.AddTXT("softfail.example", "v=spf1 ~all")
	e.dns.AddTXT("neutral.example", "v=spf1 ?all")
	e.dns.AddTXT("none.example", "google-site-verification=abc")
	e.dns.AddTXT("badip.example", "v=spf1 ip4:999.1.1.1 -all")
	e.dns.AddTXT("badterm.example", "v=spf1 frobnicate:x -all")
	e.dns.AddTXT("two.example", "v=spf1 -all", "v=spf1 +all")
	// Eleven mechanisms that each cost a lookup; all resolve, so the void
	// lookup limit is not what stops the evaluation.
	var many []string
	for i := range 11 {
		host := fmt.Sprintf("h%d.many.example", i)
		e.dns.AddA(host, "198.51.100.1")
		many = append(many, "a:"+host)
	}
	e.dns.AddTXT("many.example", "v=spf1 "+strings.Join(many, " ")+" -all")
	e.dns.Timeout("slow.example")
	e.dns.ServFail("broken.example")
	e.dns.AddTXT("incslow.example", "v=spf1 include:slow.example -all")
	e.dns.AddTXT("helo.example", "v=spf1 ip4:192.0.2.1 -all")
	// Mechanisms that ask MX, PTR and AAAA through the resolver.
	e.dns.AddTXT("mx.example", "v=spf1 mx -all")
	e.dns.AddMX("mx.example", "mail.mx.example", 10)
	e.dns.AddA("mail.mx.example", "192.0.2.1")
	e.dns.AddTXT("ptr.example", "v=spf1 ptr -all")
	e.dns.AddPTR("192.0.2.1", "host.ptr.example")
	e.dns.AddA("host.ptr.example", "192.0.2.1")
	e.dns.AddTXT("v6.example", "v=spf1 a:host.v6.example -all")
	e.dns.AddAAAA("host.v6.example", "2001:db8::25")
	// Three lookups that find nothing: more than the two void lookups
	// RFC 7208 section 4.6.4 allows.
	e.dns.AddTXT("void.example", "v=spf1 a:n1.void.example a:n2.void.example a:n3.void.example -all")

	for _, tc := range []struct {
		mailFrom, helo, client string
		want                   Verdict
		domain, scope          string
		reason                 string
	}{
		{"a@pass.example", "", "192.0.2.1", Pass, "pass.example", ScopeMailFrom, "matched ip"},
		{"a@PASS.example.", "", "::ffff:192.0.2.1", Pass, "pass.example", ScopeMailFrom, ""},
		{"a@fail.example", "", "192.0.2.1", Fail, "fail.example", ScopeMailFrom, "matched all"},
		{"a@softfail.example", "", "192.0.2.1", SoftFail, "softfail.example", ScopeMailFrom, ""},
		{"a@neutral.example", "", "192.0.2.1", Neutral, "neutral.example", ScopeMailFrom, ""},
		{"a@none.example", "", "192.0.2.1", None, "none.example", ScopeMailFrom, ""},
		{"a@nx.example", "", "192.0.2.1", None, "nx.example", ScopeMailFrom, ""},
		{"a@badip.example", "", "192.0.2.1", PermError, "badip.example", ScopeMailFrom, "invalid ipX"},
		{"a@badterm.example", "", "192.0.2.1", PermError, "badterm.example", ScopeMailFrom, "unknown field"},
		{"a@two.example", "", "192.0.2.1", PermError, "two.example", ScopeMailFrom, "multiple"},
		{"a@many.example", "", "192.0.2.1", PermError, "many.example", ScopeMailFrom, "lookup limit"},
		{"a@slow.example", "", "192.0.2.1", TempError, "slow.example", ScopeMailFrom, "timeout"},
		{"a@broken.example", "", "192.0.2.1", TempError, "broken.example", ScopeMailFrom, ""},
		{"a@incslow.example", "", "192.0.2.1", TempError, "incslow.example", ScopeMailFrom, ""},
		{"a@mx.example", "", "192.0.2.1", Pass, "mx.example", ScopeMailFrom, "matched mx"},
		{"a@mx.example", "", "192.0.2.2", Fail, "mx.example", ScopeMailFrom, ""},
		{"a@ptr.example", "", "192.0.2.1", Pass, "ptr.example", ScopeMailFrom, "matched ptr"},
		{"a@v6.example", "", "2001:db8::25", Pass, "v6.example", ScopeMailFrom, "matched a"},
		{"a@v6.example", "", "2001:db8::26", Fail, "v6.example", ScopeMailFrom, ""},
		{"a@void.example", "", "192.0.2.1", PermError, "void.example", ScopeMailFrom, "void lookup"},
		// The null reverse-path: HELO is checked (RFC 7208 section 2.4).
		{"", "helo.example", "192.0.2.1", Pass, "helo.example", ScopeHELO, ""},
		{"", "helo.example", "192.0.2.2", Fail, "helo.example", ScopeHELO, ""},
		{"", "[192.0.2.1]", "192.0.2.1", None, "[192.0.2.1]", ScopeHELO, "no domain"},
		{"a@pass.example", "", "", None, "pass.example", ScopeMailFrom, "no client address"},
	} {
		t.Run(tc.mailFrom+"/"+tc.helo+"/"+tc.client, func(t *testing.T) {
			in := input(tc.mailFrom, message("x.example", "hi\r\n"))
			in.HELO = tc.helo
			in.ClientIP = netip.Addr{} // unknown
			if tc.client != "" {
				in.ClientIP = ip(tc.client)
			}
			got := checkSPF(t.Context(), e.r, in)
			if got.Result != tc.want || got.Domain != tc.domain || got.Scope != tc.scope {
				t.Errorf("SPF = %+v, want %s for %s (%s)", got, tc.want, tc.domain, tc.scope)
			}
			if !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("reason %q, want it to say %q", got.Reason, tc.reason)
			}
		})
	}
}

func TestSPFCountsLookups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dns.AddTXT("example.com", "v=spf1 -all")
	e.check(t, input("a@example.com", message("example.com", "hi\r\n")))
	if n := e.dns.CountFor("example.com", dns.TypeTXT); n != 1 {
		t.Errorf("SPF record asked %d times, want 1", n)
	}
}
