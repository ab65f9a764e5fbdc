// Package dnsresolve is the one DNS stub resolver of the process: a per-lookup
// timeout, a bounded TTL-respecting cache (negative answers too) and
// configurable servers, shaped for SPF, DKIM and DMARC checks.
package dnsresolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout        = 3 * time.Second
	DefaultCacheEntries   = 4096
	DefaultMaxTTL         = time.Hour
	DefaultMaxNegativeTTL = 5 * time.Minute

	// resolvConf is where the system's servers are read from when none are
	// configured.
	resolvConf = "/etc/resolv.conf"

	// ednsSize is the UDP payload size we advertise: the DNS flag day 2020
	// value, which avoids IP fragmentation; larger answers come over TCP.
	ednsSize = 1232
)

// Config says how a Resolver asks. The zero value asks the system's servers
// with the defaults above.
type Config struct {
	// Servers are "host:port" addresses of recursive resolvers, asked in
	// order. Empty means the nameservers of /etc/resolv.conf.
	Servers []string
	// Timeout bounds one lookup as a whole, every server and the TCP retry
	// of a truncated answer included.
	Timeout time.Duration
	// CacheEntries caps the number of cached answers; the least recently
	// used goes first. Negative means no cache.
	CacheEntries int
	// MaxTTL caps how long a positive answer is kept, whatever its TTL.
	MaxTTL time.Duration
	// MaxNegativeTTL caps how long NXDOMAIN and NODATA answers are kept
	// (RFC 2308: the SOA minimum, bounded here so a typo fixed upstream is
	// seen soon).
	MaxNegativeTTL time.Duration
}

// Resolver asks DNS servers with github.com/miekg/dns, over UDP and again over
// TCP when an answer comes back truncated. It is safe for concurrent use; one
// is meant to serve the whole process.
//
// Its Lookup methods have the signatures of *net.Resolver so that
// blitiri.com.ar/go/spf (spf.WithResolver) and go-msgauth's dkim and dmarc
// (LookupTXT hooks) use it unchanged. Their errors are always a bare
// *net.DNSError, never wrapped, because those libraries tell a temporary
// failure from a missing record by type assertion: NXDOMAIN and NODATA set
// IsNotFound; a timeout sets IsTimeout and IsTemporary; SERVFAIL, REFUSED or
// an unreachable server set IsTemporary.
//
// miekg/dns is the client rather than net.Resolver because net.Resolver
// hides TTLs, which the cache needs, and gives no say over which servers are
// asked except through a Dial hook that still runs its own resolv.conf logic.
type Resolver struct {
	servers   []string
	timeout   time.Duration
	udp, tcp  *dns.Client
	maxTTL    time.Duration
	maxNegTTL time.Duration
	cache     *cache // nil when caching is off
	flight    singleflight.Group
	now       func() time.Time // a field so tests can move the clock
	stats     counters
}

// Stats counts what a Resolver did since it was made, for metrics.
type Stats struct {
	Lookups    uint64 // questions asked of the Resolver (A and AAAA count apart)
	CacheHits  uint64 // of those, answered from the cache
	Exchanges  uint64 // questions sent to a server (UDP, and TCP again when truncated)
	TCPRetries uint64 // of those, over TCP after a truncated UDP answer
	Failures   uint64 // lookups that ended in a temporary error
}

type counters struct {
	lookups, cacheHits, exchanges, tcpRetries, failures atomic.Uint64
}

// Stats returns the counts so far.
func (r *Resolver) Stats() Stats {
	return Stats{
		Lookups:    r.stats.lookups.Load(),
		CacheHits:  r.stats.cacheHits.Load(),
		Exchanges:  r.stats.exchanges.Load(),
		TCPRetries: r.stats.tcpRetries.Load(),
		Failures:   r.stats.failures.Load(),
	}
}

// New builds a Resolver. It fails when a server is not "host:port" or, with
// no servers given, when /etc/resolv.conf cannot be read.
func New(cfg Config) (*Resolver, error) {
	return newWith(cfg, resolvConf)
}

func newWith(cfg Config, resolvConf string) (*Resolver, error) {
	servers := cfg.Servers
	if len(servers) == 0 {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("dns servers: none configured and %s unreadable: %w", resolvConf, err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("dns servers: none configured and none in %s", resolvConf)
		}
	}
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("dns server %q: want host:port, such as 192.0.2.53:53", s)
		}
	}
	r := &Resolver{
		servers:   append([]string(nil), servers...),
		timeout:   orDefault(cfg.Timeout, DefaultTimeout),
		maxTTL:    orDefault(cfg.MaxTTL, DefaultMaxTTL),
		maxNegTTL: orDefault(cfg.MaxNegativeTTL, DefaultMaxNegativeTTL),
		now:       time.Now,
	}
	r.udp = &dns.Client{Net: "udp", UDPSize: ednsSize, Timeout: r.timeout}
	r.tcp = &dns.Client{Net: "tcp", Timeout: r.timeout}
	switch n := cfg.CacheEntries; {
	case n == 0:
		r.cache = newCache(DefaultCacheEntries)
	case n > 0:
		r.cache = newCache(n)
	}
	return r, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Servers returns the servers asked, in order.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// IsTemporary reports whether err is worth retrying later: a timeout,
// SERVFAIL or an unreachable server (the temperror of RFC 7208, 6376 and
// 7489), as opposed to a name that does not exist. Errors that are not DNS
// errors are temporary too, since nothing says they are not.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.IsTimeout || de.IsTemporary
	}
	return true
}

// IsNotFound reports whether err says the name or the record type does not
// exist (NXDOMAIN or NODATA).
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// LookupTXT returns the TXT records of name, each record's strings joined
// as net.Resolver does (a DKIM key split over several strings comes back
// whole).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		s, err := txtData(rr)
		if err != nil {
			return nil, &net.DNSError{Err: "malformed TXT record", Name: name}
		}
		out = append(out, s)
	}
	return out, nil
}

// LookupMX returns the MX records of name in the order received.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return out, nil
}

// LookupIPAddr returns the A and AAAA addresses of host. As net.Resolver
// does by default, a family that fails is ignored when the other has
// addresses: a server that times out on AAAA must not turn every SPF "a"
// check of an IPv4 client into a temperror.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	type res struct {
		rrs []dns.RR
		err error
	}
	aaaa := make(chan res, 1)
	go func() {
		rrs, err := r.lookup(ctx, host, dns.TypeAAAA)
		aaaa <- res{rrs, err}
	}()
	a4, err4 := r.lookup(ctx, host, dns.TypeA)
	a6 := <-aaaa

	var out []net.IPAddr
	for _, rr := range a4 {
		out = append(out, net.IPAddr{IP: rr.(*dns.A).A})
	}
	for _, rr := range a6.rrs {
		out = append(out, net.IPAddr{IP: rr.(*dns.AAAA).AAAA})
	}
	if len(out) > 0 {
		return out, nil
	}
	switch {
	case err4 != nil && IsTemporary(err4):
		return nil, err4
	case a6.err != nil && IsTemporary(a6.err):
		return nil, a6.err
	case err4 != nil:
		return nil, err4
	case a6.err != nil:
		return nil, a6.err
	}
	return nil, notFound(host)
}

// LookupAddr returns the PTR names of an IP address (SPF's "ptr" and %{p}).
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	arpa, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	rrs, err := r.lookup(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}

// lookup returns the answer records of type qtype for name, from the cache
// or the servers. Callers on the same name and type share one query; a
// caller whose ctx ends stops waiting without cancelling the others.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	fqdn := dns.CanonicalName(name)
	if _, ok := dns.IsDomainName(fqdn); !ok || len(fqdn) > 254 || strings.Contains(fqdn, "..") || !plain(fqdn) {
		// As net.Resolver: a name that cannot be asked does not exist.
		return nil, notFound(name)
	}
	r.stats.lookups.Add(1)
	if err := ctx.Err(); err != nil {
		// Checked first: the select below picks at random when the
		// answer is also ready.
		r.stats.failures.Add(1)
		return nil, ctxError(name, err)
	}
	k := cacheKey{name: fqdn, qtype: qtype}
	if r.cache != nil {
		if a, ok := r.cache.get(k, r.now()); ok {
			r.stats.cacheHits.Add(1)
			return a.result(name)
		}
	}
	ch := r.flight.DoChan(fqdn+"/"+dns.TypeToString[qtype], func() (any, error) {
		a, err := r.exchange(fqdn, qtype)
		if err == nil && r.cache != nil && a.ttl > 0 {
			a.expires = r.now().Add(a.ttl)
			r.cache.put(k, a)
		}
		return a, err
	})
	select {
	case <-ctx.Done():
		r.stats.failures.Add(1)
		return nil, ctxError(name, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			r.stats.failures.Add(1)
			return nil, withName(res.Err, name)
		}
		return res.Val.(*answer).result(name)
	}
}

// plain says whether name holds only letters, digits, hyphens, underscores
// and dots, as net.Resolver requires. miekg/dns would take more (address
// literals from HELO, backslashes it reads as escapes, so a DKIM selector
// ending in one would join two labels of the name asked); none of it names
// a record SPF, DKIM or DMARC can use.
func plain(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// exchange asks the servers in turn until one gives a usable answer
// (NOERROR or NXDOMAIN). The lookup's Timeout is shared out so a dead first
// server leaves time for the others.
func (r *Resolver) exchange(fqdn string, qtype uint16) (*answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	q := new(dns.Msg)
	q.SetQuestion(fqdn, qtype)
	q.RecursionDesired = true
	q.SetEdns0(ednsSize, false)

	var last error = &net.DNSError{Err: "no servers answered", IsTemporary: true}
	for i, srv := range r.servers {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		actx, acancel := context.WithTimeout(ctx, left/time.Duration(len(r.servers)-i))
		resp, err := r.exchangeOne(actx, q, srv)
		acancel()
		if err != nil {
			last = err
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return r.newAnswer(resp, qtype), nil
		default:
			// SERVFAIL (often a DNSSEC or upstream failure), REFUSED and
			// the rest: the next server may do better; if none does, it
			// is temporary.
			last = &net.DNSError{Err: "server misbehaving: " + dns.RcodeToString[resp.Rcode], IsTemporary: true}
		}
	}
	return nil, last
}

// exchangeOne asks one server over UDP and, when the answer is truncated,
// over TCP.
func (r *Resolver) exchangeOne(ctx context.Context, q *dns.Msg, srv string) (*dns.Msg, error) {
	r.stats.exchanges.Add(1)
	resp, _, err := r.udp.ExchangeContext(ctx, q, srv)
	if err == nil && resp.Truncated {
		r.stats.exchanges.Add(1)
		r.stats.tcpRetries.Add(1)
		resp, _, err = r.tcp.ExchangeContext(ctx, q, srv)
	}
	if err != nil {
		return nil, netError(err)
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, q.Question[0].Name) || resp.Question[0].Qtype != q.Question[0].Qtype {
		return nil, &net.DNSError{Err: "answer for another question", IsTemporary: true}
	}
	if resp.Truncated {
		return nil, &net.DNSError{Err: "truncated answer over TCP", IsTemporary: true}
	}
	return resp, nil
}

// netError turns a transport error into a temporary *net.DNSError.
func netError(err error) *net.DNSError {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return &net.DNSError{Err: "i/o timeout", IsTimeout: true, IsTemporary: true}
	}
	return &net.DNSError{Err: err.Error(), IsTemporary: true}
}

func ctxError(name string, err error) *net.DNSError {
	return &net.DNSError{Err: err.Error(), Name: name, IsTimeout: errors.Is(err, context.DeadlineExceeded), IsTemporary: true}
}

// withName copies a shared error so each caller sees its own name in it and
// no caller can change another's.
func withName(err error, name string) error {
	var de *net.DNSError
	if errors.As(err, &de) {
		c := *de
		c.Name = name
		return &c
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}

func notFound(name string) *net.DNSError {
	// The text net.Resolver uses, so logs read the same either way.
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// txtData returns the bytes of a TXT record's strings joined. miekg/dns keeps
// TXT strings in presentation form (\" and \DDD escapes); packing the record
// undoes that exactly, so the rdata is read back from the wire form.
func txtData(rr dns.RR) (string, error) {
	rr = dns.Copy(rr) // PackRR sets Rdlength; the cached record is shared
	buf := make([]byte, dns.Len(rr)+1)
	end, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return "", err
	}
	rdata := buf[end-int(rr.Header().Rdlength) : end]
	var b strings.Builder
	for len(rdata) > 0 {
		n := int(rdata[0])
		if 1+n > len(rdata) {
			return "", errors.New("short TXT string")
		}
		b.Write(rdata[1 : 1+n])
		rdata = rdata[1+n:]
	}
	return b.String(), nil
}
