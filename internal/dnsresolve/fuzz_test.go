package dnsresolve

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rawServer answers every DNS question, over UDP and TCP, with the bytes a
// fuzz case gives, its ID set to the question's.
type rawServer struct {
	addr string
	mu   sync.Mutex
	resp []byte
}

func newRawServer(tb testing.TB) *rawServer {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		tb.Fatal(err)
	}
	s := &rawServer{addr: pc.LocalAddr().String()}
	tb.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(s.answer(buf[:n]), from)
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				a := s.answer(q)
				c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(a))))
				c.Write(a)
			}()
		}
	}()
	return s
}

func (s *rawServer) set(resp []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resp = resp
}

func (s *rawServer) answer(q []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := append([]byte(nil), s.resp...)
	if len(a) >= 2 && len(q) >= 2 {
		copy(a, q[:2])
	}
	return a
}

// packed is a well-formed answer to example.com, as a seed.
func packed(f *testing.F, qtype uint16, rcode int, truncated bool, rrs ...string) []byte {
	m := new(dns.Msg)
	m.SetQuestion("example.com.", qtype)
	m.Response, m.Rcode, m.Truncated = true, rcode, truncated
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		if rr.Header().Rrtype == dns.TypeSOA {
			m.Ns = append(m.Ns, rr)
		} else {
			m.Answer = append(m.Answer, rr)
		}
	}
	b, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzLookup gives the resolver arbitrary answers from a server. Whatever
// the bytes, a lookup must return records or a bare *net.DNSError, never
// panic, never an empty success.
func FuzzLookup(f *testing.F) {
	soa := "test. 60 IN SOA ns.test. h.test. 1 3600 600 86400 60"
	f.Add(uint8(0), packed(f, dns.TypeTXT, dns.RcodeSuccess, false, `example.com. 300 IN TXT "v=spf1 \"-all" "x\255"`))
	f.Add(uint8(0), packed(f, dns.TypeTXT, dns.RcodeSuccess, true))
	f.Add(uint8(0), packed(f, dns.TypeTXT, dns.RcodeNameError, false, soa))
	f.Add(uint8(0), packed(f, dns.TypeTXT, dns.RcodeServerFailure, false))
	f.Add(uint8(1), packed(f, dns.TypeA, dns.RcodeSuccess, false, "example.com. 300 IN CNAME b.example.com.", "b.example.com. 300 IN A 192.0.2.1"))
	f.Add(uint8(2), packed(f, dns.TypeMX, dns.RcodeSuccess, false, "example.com. 300 IN MX 10 mail.example.com."))
	f.Add(uint8(3), []byte{0, 0, 0x81, 0x80})

	srv := newRawServer(f)
	f.Fuzz(func(t *testing.T, kind uint8, resp []byte) {
		srv.set(resp)
		r, err := New(Config{Servers: []string{srv.addr}, Timeout: 200 * time.Millisecond, CacheEntries: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var n int
		switch kind % 4 {
		case 0:
			var v []string
			v, err = r.LookupTXT(ctx, "example.com")
			n = len(v)
		case 1:
			var v []net.IPAddr
			v, err = r.LookupIPAddr(ctx, "example.com")
			n = len(v)
		case 2:
			var v []*net.MX
			v, err = r.LookupMX(ctx, "example.com")
			n = len(v)
		case 3:
			var v []string
			v, err = r.LookupAddr(ctx, "192.0.2.1")
			n = len(v)
		}
		t.Logf("kind %d: %d records, %v", kind%4, n, err)
		if err != nil {
			if _, ok := err.(*net.DNSError); !ok {
				t.Fatalf("error %v (%T) is not a bare *net.DNSError", err, err)
			}
			return
		}
		if n == 0 {
			t.Fatal("success with no records")
		}
	})
}
