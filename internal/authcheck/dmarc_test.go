package authcheck

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestDMARC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := newEd25519(t)

	// example.com: relaxed alignment, reject; its mail servers send as
	// bounce.example.com and sign as example.com or mail.example.com.
	e.dns.AddTXT("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com")
	e.dns.AddTXT("bounce.example.com", "v=spf1 ip4:192.0.2.0/24 -all")
	e.dns.AddTXT("example.com", "v=spf1 ip4:192.0.2.0/24 -all")
	e.publishKey(t, "example.com", "s", k)
	e.publishKey(t, "mail.example.com", "s", k)
	// strict.example: strict alignment for both.
	e.dns.AddTXT("_dmarc.strict.example", "v=DMARC1; p=quarantine; adkim=s; aspf=s")
	e.dns.AddTXT("bounce.strict.example", "v=spf1 ip4:192.0.2.0/24 -all")
	e.dns.AddTXT("strict.example", "v=spf1 ip4:192.0.2.0/24 -all")
	e.publishKey(t, "mail.strict.example", "s", k)
	e.publishKey(t, "strict.example", "s", k)
	// parent.example publishes for its subdomains with sp=.
	e.dns.AddTXT("_dmarc.parent.example", "v=DMARC1; p=reject; sp=quarantine")
	// example.co.uk: the organizational domain is under a two-label suffix.
	e.dns.AddTXT("_dmarc.example.co.uk", "v=DMARC1; p=none")
	// own.parent.example has its own record, whose p= applies, not sp=.
	e.dns.AddTXT("_dmarc.own.parent.example", "v=DMARC1; p=none")
	e.dns.AddTXT("_dmarc.broken.example", "v=DMARC1; p=bogus")
	e.dns.AddTXT("_dmarc.two.example", "v=DMARC1; p=none", "v=DMARC1; p=reject")
	e.dns.AddTXT("_dmarc.sub.two.example", "v=DMARC1; p=none", "v=DMARC1; p=reject", "v=spf1 -all")
	e.dns.Timeout("_dmarc.slow.example")
	// spfslow.example: the only aligned identity's SPF times out.
	e.dns.AddTXT("_dmarc.spfslow.example", "v=DMARC1; p=reject")
	e.dns.Timeout("spfslow.example")
	// The sender's own domain, not aligned with any From above.
	e.dns.AddTXT("other.example", "v=spf1 ip4:192.0.2.0/24 -all")

	unsigned := func(from string) []byte { return message(from, "hi\r\n") }
	signed := func(from, d string) []byte { return sign(t, message(from, "hi\r\n"), d, "s", k) }

	for _, tc := range []struct {
		name        string
		mailFrom    string
		msg         []byte
		want        Verdict
		policy      string
		domain      string
		spf, dkim   bool
		reasonHas   string
		dkimVerdict Verdict
	}{
		{"SPF alignment only, relaxed", "b@bounce.example.com", unsigned("example.com"), Pass, "reject", "example.com", true, false, "", None},
		{"DKIM alignment only, relaxed", "b@other.example", signed("example.com", "mail.example.com"), Pass, "reject", "example.com", false, true, "", Pass},
		{"both aligned", "b@example.com", signed("example.com", "example.com"), Pass, "reject", "example.com", true, true, "", Pass},
		{"nothing aligned, p=reject reported", "b@other.example", signed("example.com", "other.example"), Fail, "reject", "example.com", false, false, "no aligned", PermError},
		{"strict: subdomain SPF does not align", "b@bounce.strict.example", unsigned("strict.example"), Fail, "quarantine", "strict.example", false, false, "", None},
		{"strict: subdomain DKIM does not align", "b@other.example", signed("strict.example", "mail.strict.example"), Fail, "quarantine", "strict.example", false, false, "", Pass},
		{"strict: exact SPF aligns", "b@strict.example", unsigned("strict.example"), Pass, "quarantine", "strict.example", true, false, "", None},
		{"strict: exact DKIM aligns", "b@other.example", signed("strict.example", "strict.example"), Pass, "quarantine", "strict.example", false, true, "", Pass},
		{"subdomain policy sp=", "b@other.example", unsigned("news.parent.example"), Fail, "quarantine", "news.parent.example", false, false, "", None},
		{"subdomain's own record", "b@other.example", unsigned("own.parent.example"), Fail, "none", "own.parent.example", false, false, "", None},
		{"organizational domain fallback", "b@other.example", unsigned("a.b.example.co.uk"), Fail, "none", "a.b.example.co.uk", false, false, "", None},
		{"no record", "b@other.example", unsigned("other.example"), None, "", "other.example", true, false, "no DMARC record", None},
		{"several records", "b@other.example", unsigned("two.example"), None, "", "two.example", false, false, "several DMARC records", None},
		{"several records, not at the organizational domain", "b@other.example", unsigned("sub.two.example"), None, "", "sub.two.example", false, false, "several DMARC records", None},
		{"record syntax error", "b@other.example", unsigned("broken.example"), PermError, "", "broken.example", false, false, "invalid policy", None},
		{"policy lookup timeout", "b@other.example", unsigned("slow.example"), TempError, "", "slow.example", false, false, "", None},
		{"aligned SPF temperror", "b@spfslow.example", unsigned("spfslow.example"), TempError, "reject", "spfslow.example", false, false, "temporary", None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := e.check(t, input(tc.mailFrom, tc.msg))
			d := res.DMARC
			if d.Result != tc.want || d.Policy != tc.policy || d.Domain != tc.domain || d.AlignedSPF != tc.spf || d.AlignedDKIM != tc.dkim {
				t.Errorf("DMARC = %+v\nwant result %s policy %q domain %s aligned spf %v dkim %v", d, tc.want, tc.policy, tc.domain, tc.spf, tc.dkim)
			}
			if !strings.Contains(d.Reason, tc.reasonHas) {
				t.Errorf("reason %q, want it to say %q", d.Reason, tc.reasonHas)
			}
			if res.DKIM[0].Result != tc.dkimVerdict {
				t.Errorf("DKIM = %+v, want %s", res.DKIM, tc.dkimVerdict)
			}
		})
	}

	// Policy discovery asked the From domain first, then its
	// organizational domain (not the intermediate b.example.co.uk).
	for name, want := range map[string]int{
		"_dmarc.a.b.example.co.uk": 1,
		"_dmarc.b.example.co.uk":   0,
		"_dmarc.example.co.uk":     1,
	} {
		if n := e.dns.CountFor(name, dns.TypeTXT); n != want {
			t.Errorf("%s asked %d times, want %d", name, n, want)
		}
	}
}

func TestDMARCFromField(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name, header string
		want         Verdict
		domain       string
		reason       string
	}{
		{"no From", "To: b@example.net\r\n", PermError, "", "0 From"},
		{"two From fields", "From: a@example.com\r\nFrom: b@example.org\r\n", PermError, "", "2 From"},
		{"two domains", "From: a@example.com, b@example.org\r\n", PermError, "", "several domains"},
		{"two addresses one domain", "From: a@example.com, b@EXAMPLE.com\r\n", None, "example.com", ""},
		{"unparseable", "From: <<<\r\n", PermError, "", "unparseable"},
		{"address without domain", "From: alice\r\n", PermError, "", ""},
		{"folded, encoded name", "From: =?x-unknown?q?Al=E9?=\r\n <alice@Example.COM>\r\n", None, "example.com", ""},
		{"internationalized domain", "From: a@bücher.example\r\n", None, "xn--bcher-kva.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(tc.header + "Subject: x\r\n\r\nbody\r\n")
			d := e.check(t, input("", msg)).DMARC
			if d.Result != tc.want || d.Domain != tc.domain || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("DMARC = %+v, want %s for %q saying %q", d, tc.want, tc.domain, tc.reason)
			}
		})
	}
}
