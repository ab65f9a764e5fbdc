package dnstest

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func ask(t *testing.T, s *Server, network, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	if edns > 0 {
		q.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(q, s.Addr())
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	return r
}

func TestServer(t *testing.T) {
	t.Parallel()
	s := New(t)
	s.AddTXT("sel._domainkey.Example.com", "v=DKIM1; p="+strings.Repeat("A", 600))
	s.AddA("example.com", "192.0.2.1")
	s.ServFail("broken.example.com")

	r := ask(t, s, "udp", "sel._domainkey.example.com", dns.TypeTXT, 0)
	if !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("UDP without EDNS0: TC %v, %d answers; want a truncated empty answer", r.Truncated, len(r.Answer))
	}
	r = ask(t, s, "tcp", "sel._domainkey.example.com", dns.TypeTXT, 0)
	if r.Truncated || len(r.Answer) != 1 || len(r.Answer[0].(*dns.TXT).Txt) != 3 {
		t.Errorf("TCP: %v", r)
	}
	r = ask(t, s, "udp", "sel._domainkey.example.com", dns.TypeTXT, 1232)
	if r.Truncated || len(r.Answer) != 1 {
		t.Errorf("UDP with EDNS0 1232: %v", r)
	}
	s.SetUDPLimit(512)
	if r = ask(t, s, "udp", "sel._domainkey.example.com", dns.TypeTXT, 1232); !r.Truncated {
		t.Error("SetUDPLimit(512) did not truncate")
	}

	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		soa   bool
	}{
		{"example.com", dns.TypeA, dns.RcodeSuccess, false},
		{"example.com", dns.TypeTXT, dns.RcodeSuccess, true},               // NODATA
		{"_domainkey.example.com", dns.TypeTXT, dns.RcodeSuccess, true},    // empty non-terminal
		{"nx.example.com", dns.TypeTXT, dns.RcodeNameError, true},          // NXDOMAIN
		{"broken.example.com", dns.TypeTXT, dns.RcodeServerFailure, false}, // as told
		{"xexample.com", dns.TypeTXT, dns.RcodeNameError, true},            // not a parent of example.com
	} {
		r := ask(t, s, "udp", tc.name, tc.qtype, 0)
		if r.Rcode != tc.rcode || (len(r.Ns) == 1) != tc.soa {
			t.Errorf("%s/%s: rcode %s, %d authority records; want %s, SOA %v",
				tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], len(r.Ns), dns.RcodeToString[tc.rcode], tc.soa)
		}
	}

	if got := s.CountFor("SEL._domainkey.example.com.", dns.TypeTXT); got != 4 {
		t.Errorf("CountFor = %d, want 4", got)
	}
	qs := s.Queries()
	if len(qs) != s.Count() || qs[1].Net != "tcp" || qs[0].Net != "udp" {
		t.Errorf("Queries = %+v", qs)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	s := New(t)
	s.Timeout("slow.example.com")
	q := new(dns.Msg)
	q.SetQuestion("slow.example.com.", dns.TypeTXT)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	if _, _, err := c.Exchange(q, s.Addr()); err == nil {
		t.Error("a name that times out was answered")
	}
	if s.Count() != 1 {
		t.Errorf("Count = %d, want 1", s.Count())
	}
}
