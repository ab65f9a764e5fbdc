// Package dnstest runs a real DNS server on loopback for tests: the test
// publishes records (TXT, A, AAAA, MX, PTR), makes names time out or fail,
// and counts the queries, over UDP and TCP alike.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// TTL is the TTL of every record the server gives.
const TTL = 300

// negTTL is the SOA minimum sent with NXDOMAIN and NODATA, so resolvers may
// cache negative answers (RFC 2308).
const negTTL = 60

// Query is one question the server received.
type Query struct {
	Name string // lower case, fully qualified
	Type uint16 // dns.TypeTXT, ...
	Net  string // "udp" or "tcp"
}

// Server answers from the records a test adds: authoritatively, for any
// name, with NXDOMAIN for names under none of them and NODATA for a type a
// name lacks. UDP answers larger than the client's EDNS0 size (512 bytes
// without EDNS0) or than SetUDPLimit are truncated, so resolvers must retry
// over TCP, as with a real server.
type Server struct {
	addr     string
	udp, tcp *dns.Server

	// mu guards everything below. records maps a lower-case FQDN to its
	// records; dead and servfail hold names answered never or with
	// SERVFAIL, whatever records they have; queries lists every question
	// received, in order.
	mu       sync.Mutex
	records  map[string][]dns.RR
	dead     map[string]bool
	servfail map[string]bool
	udpLimit int
	queries  []Query
}

// New starts a server on 127.0.0.1 (the same port for UDP and TCP) and stops
// it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		records:  make(map[string][]dns.RR),
		dead:     make(map[string]bool),
		servfail: make(map[string]bool),
		udpLimit: dns.MaxMsgSize,
	}
	var pc net.PacketConn
	var ln net.Listener
	// The UDP port picked by the system may be taken on TCP; try again.
	for i := 0; ; i++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: listen udp: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if i == 10 {
			t.Fatalf("dnstest: listen tcp: %v", err)
		}
	}
	s.addr = pc.LocalAddr().String()

	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve("udp")), NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve("tcp")), NotifyStartedFunc: notify}
	errs := make(chan error, 2)
	go func() { errs <- s.udp.ActivateAndServe() }()
	go func() { errs <- s.tcp.ActivateAndServe() }()
	for range 2 {
		select {
		case <-started:
		case err := <-errs:
			t.Fatalf("dnstest: serve: %v", err)
		}
	}
	t.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	return s
}

// Addr is the server's "127.0.0.1:port", for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// AddTXT publishes one TXT record per value. A value longer than 255 bytes is
// split into several strings of one record, as DKIM keys are published;
// resolvers join them again.
func (s *Server) AddTXT(name string, values ...string) {
	for _, v := range values {
		var parts []string
		for len(v) > 255 {
			parts = append(parts, escapeTXT(v[:255]))
			v = v[255:]
		}
		parts = append(parts, escapeTXT(v))
		s.add(&dns.TXT{Hdr: s.hdr(name, dns.TypeTXT), Txt: parts})
	}
}

// escapeTXT puts a raw string in the presentation form miekg/dns packs from.
func escapeTXT(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// AddA publishes A records.
func (s *Server) AddA(name string, ips ...string) {
	for _, ip := range ips {
		s.add(&dns.A{Hdr: s.hdr(name, dns.TypeA), A: mustIP(ip).To4()})
	}
}

// AddAAAA publishes AAAA records.
func (s *Server) AddAAAA(name string, ips ...string) {
	for _, ip := range ips {
		s.add(&dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: mustIP(ip)})
	}
}

// AddMX publishes an MX record.
func (s *Server) AddMX(name, host string, pref uint16) {
	s.add(&dns.MX{Hdr: s.hdr(name, dns.TypeMX), Mx: dns.Fqdn(host), Preference: pref})
}

// AddPTR publishes the reverse name of ip.
func (s *Server) AddPTR(ip, host string) {
	arpa, err := dns.ReverseAddr(ip)
	if err != nil {
		panic("dnstest: bad IP " + ip)
	}
	s.add(&dns.PTR{Hdr: s.hdr(arpa, dns.TypePTR), Ptr: dns.Fqdn(host)})
}

// Timeout makes the server never answer questions about name, so clients
// time out.
func (s *Server) Timeout(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead[dns.CanonicalName(name)] = true
}

// ServFail makes the server answer SERVFAIL to questions about name.
func (s *Server) ServFail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[dns.CanonicalName(name)] = true
}

// SetUDPLimit truncates UDP answers above n bytes (at least 512), whatever
// size the client offers.
func (s *Server) SetUDPLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.udpLimit = n
}

// Queries returns every question received so far, in order.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.queries...)
}

// Count returns how many questions were received so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queries)
}

// CountFor returns how many questions about name of type qtype were
// received, over either transport.
func (s *Server) CountFor(name string, qtype uint16) int {
	name = dns.CanonicalName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, q := range s.queries {
		if q.Name == name && q.Type == qtype {
			n++
		}
	}
	return n
}

func (s *Server) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.CanonicalName(name), Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
}

func (s *Server) add(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[rr.Header().Name] = append(s.records[rr.Header().Name], rr)
}

func mustIP(s string) net.IP {
	ip := net.ParseIP(s)
	if ip == nil {
		panic("dnstest: bad IP " + s)
	}
	return ip
}

func (s *Server) serve(network string) func(dns.ResponseWriter, *dns.Msg) {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		if len(req.Question) != 1 {
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeFormatError)
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		name := dns.CanonicalName(q.Name)

		s.mu.Lock()
		s.queries = append(s.queries, Query{Name: name, Type: q.Qtype, Net: network})
		dead, servfail := s.dead[name], s.servfail[name]
		var answer []dns.RR
		exists := false
		for owner, rrs := range s.records {
			if owner == name || strings.HasSuffix(owner, "."+name) {
				exists = true // the name itself or an empty non-terminal
			}
			if owner != name {
				continue
			}
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Qtype {
					answer = append(answer, dns.Copy(rr))
				}
			}
		}
		limit := s.udpLimit
		s.mu.Unlock()

		if dead {
			return // no answer: the client times out
		}
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.RecursionAvailable = true
		switch {
		case servfail:
			m.Rcode = dns.RcodeServerFailure
		case len(answer) > 0:
			m.Answer = answer
		default:
			if !exists {
				m.Rcode = dns.RcodeNameError
			}
			m.Ns = []dns.RR{&dns.SOA{
				Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negTTL},
				Ns:  "ns.test.", Mbox: "hostmaster.test.", Serial: 1,
				Refresh: 3600, Retry: 600, Expire: 86400, Minttl: negTTL,
			}}
		}
		if opt := req.IsEdns0(); opt != nil {
			m.SetEdns0(opt.UDPSize(), false)
		}
		if network == "udp" {
			size := dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(min(size, limit))
		}
		w.WriteMsg(m)
	}
}
