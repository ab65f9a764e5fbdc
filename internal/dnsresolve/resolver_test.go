package dnsresolve

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"

	"github.com/postern/postern/internal/dnstest"
)

// The libraries that share the resolver take it as these.
var (
	_ spf.DNSResolver                                         = (*Resolver)(nil)
	_ func(context.Context, string) ([]string, error)         = (*Resolver)(nil).LookupTXT
	_ func(context.Context, string) ([]net.IPAddr, error)     = (*Resolver)(nil).LookupIPAddr
	_ func(context.Context, string) ([]*net.MX, error)        = (*Resolver)(nil).LookupMX
	_ func(context.Context, string) (names []string, e error) = (*Resolver)(nil).LookupAddr
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newResolver(t *testing.T, cfg Config) (*Resolver, *fakeClock) {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)}
	r.now = clk.Now
	return r, clk
}

func dnsErr(t *testing.T, err error) *net.DNSError {
	t.Helper()
	// A bare *net.DNSError, as spf, dkim and dmarc assert the type.
	de, ok := err.(*net.DNSError)
	if !ok {
		t.Fatalf("error %v (%T) is not a bare *net.DNSError", err, err)
	}
	return de
}

func TestLookupTXT(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 400)
	odd := `quote " backslash \ semicolon ; byte ` + "\x01"
	srv.AddTXT("Example.COM", "v=spf1 -all", long, odd)
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}})

	got, err := r.LookupTXT(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"v=spf1 -all", long, odd}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("LookupTXT = %q, want %q", got, want)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	srv.AddA("host.example.com", "192.0.2.1")
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}})
	ctx := context.Background()

	for _, name := range []string{
		"nx.example.com",   // NXDOMAIN
		"host.example.com", // NODATA: has A, no TXT
		"example.com",      // empty non-terminal
	} {
		_, err := r.LookupTXT(ctx, name)
		de := dnsErr(t, err)
		if !de.IsNotFound || IsTemporary(err) || !IsNotFound(err) {
			t.Errorf("%s: err %+v: want not found, not temporary", name, de)
		}
		if de.Name != name {
			t.Errorf("%s: error names %q", name, de.Name)
		}
	}

	// Names that cannot be asked do not exist, and are not asked.
	asked := srv.Count()
	for _, name := range []string{
		"bad..name.example",
		"[192.0.2.1]",
		`sel\._domainkey.example.com`, // an escape would join two labels
		"a b.example.com",
		"caf\xc3\xa9.example",
		strings.Repeat("a.", 130) + "example",
	} {
		_, err := r.LookupTXT(ctx, name)
		if de := dnsErr(t, err); !de.IsNotFound || de.Name != name {
			t.Errorf("%q: err %+v: want not found", name, de)
		}
	}
	if n := srv.Count(); n != asked {
		t.Errorf("names that cannot be asked were asked: %v", srv.Queries()[asked:])
	}
}

func TestTemporary(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	srv.Timeout("slow.example.com")
	srv.ServFail("broken.example.com")
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}, Timeout: 300 * time.Millisecond})
	ctx := context.Background()

	_, err := r.LookupTXT(ctx, "slow.example.com")
	if de := dnsErr(t, err); !de.IsTimeout || !de.Temporary() || de.IsNotFound {
		t.Errorf("timeout: err %+v, want timeout", de)
	}
	_, err = r.LookupTXT(ctx, "broken.example.com")
	if de := dnsErr(t, err); de.IsTimeout || !de.IsTemporary || de.IsNotFound {
		t.Errorf("servfail: err %+v, want temporary", de)
	}
	if !IsTemporary(err) || IsNotFound(err) {
		t.Error("SERVFAIL must be temporary, not not-found")
	}
	if f := r.Stats().Failures; f != 2 {
		t.Errorf("Stats.Failures = %d, want 2", f)
	}
	// Temporary failures are not cached: each lookup asks again.
	before := srv.CountFor("broken.example.com", dns.TypeTXT)
	r.LookupTXT(ctx, "broken.example.com")
	if after := srv.CountFor("broken.example.com", dns.TypeTXT); after != before+1 {
		t.Errorf("SERVFAIL was cached: %d queries, then %d", before, after)
	}
}

func TestCallerContext(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	srv.Timeout("slow.example.com")
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.LookupTXT(ctx, "slow.example.com")
	if de := dnsErr(t, err); !de.Temporary() {
		t.Errorf("cancelled: err %+v, want temporary", de)
	}
}

func TestTruncatedFallsBackToTCP(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	big := strings.Repeat("x", 3000)
	srv.AddTXT("big.example.com", big)
	srv.AddTXT("small.example.com", "v=spf1 -all")
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}})

	got, err := r.LookupTXT(context.Background(), "big.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != big {
		t.Fatalf("got %d records, want the 3000-byte one", len(got))
	}
	if _, err := r.LookupTXT(context.Background(), "small.example.com"); err != nil {
		t.Fatal(err)
	}
	var nets []string
	for _, q := range srv.Queries() {
		nets = append(nets, strings.TrimSuffix(q.Name, ".example.com.")+"/"+q.Net)
	}
	if want := []string{"big/udp", "big/tcp", "small/udp"}; !slices.Equal(nets, want) {
		t.Errorf("queries %v, want %v", nets, want)
	}
	if got, want := r.Stats(), (Stats{Lookups: 2, Exchanges: 3, TCPRetries: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestNextServer(t *testing.T) {
	t.Parallel()
	dead := dnstest.New(t)
	dead.Timeout("example.com")
	failing := dnstest.New(t)
	failing.ServFail("example.com")
	good := dnstest.New(t)
	good.AddTXT("example.com", "v=spf1 -all")
	r, _ := newResolver(t, Config{Servers: []string{dead.Addr(), failing.Addr(), good.Addr()}, Timeout: time.Second})

	got, err := r.LookupTXT(context.Background(), "example.com")
	if err != nil || len(got) != 1 {
		t.Fatalf("LookupTXT = %q, %v", got, err)
	}
	for i, s := range []*dnstest.Server{dead, failing, good} {
		if s.Count() != 1 {
			t.Errorf("server %d asked %d times, want 1", i, s.Count())
		}
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	srv.AddTXT("example.com", "v=spf1 -all")
	r, clk := newResolver(t, Config{Servers: []string{srv.Addr()}, MaxNegativeTTL: 30 * time.Second})
	ctx := context.Background()
	count := func(name string) int { return srv.CountFor(name, dns.TypeTXT) }

	for range 3 {
		if _, err := r.LookupTXT(ctx, "EXAMPLE.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.LookupTXT(ctx, "nx.example.com"); !IsNotFound(err) {
			t.Fatalf("nx: %v", err)
		}
	}
	if count("example.com") != 1 || count("nx.example.com") != 1 {
		t.Fatalf("asked %d and %d times, want once each", count("example.com"), count("nx.example.com"))
	}
	if got, want := r.Stats(), (Stats{Lookups: 6, CacheHits: 4, Exchanges: 2}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}

	// The negative answer is kept MaxNegativeTTL (30s), not the SOA's 60s.
	clk.Add(31 * time.Second)
	r.LookupTXT(ctx, "nx.example.com")
	r.LookupTXT(ctx, "example.com")
	if count("nx.example.com") != 2 || count("example.com") != 1 {
		t.Fatalf("after 31s: asked %d and %d times, want 2 and 1", count("nx.example.com"), count("example.com"))
	}

	// The positive answer is kept its TTL.
	clk.Add(dnstest.TTL * time.Second)
	r.LookupTXT(ctx, "example.com")
	if count("example.com") != 2 {
		t.Fatalf("after the TTL: asked %d times, want 2", count("example.com"))
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	for _, n := range []string{"a", "b", "c"} {
		srv.AddTXT(n+".example.com", n)
	}
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}, CacheEntries: 2})
	ctx := context.Background()
	for _, n := range []string{"a", "b", "a", "c", "a", "b"} {
		if _, err := r.LookupTXT(ctx, n+".example.com"); err != nil {
			t.Fatal(err)
		}
		if l := r.cache.len(); l > 2 {
			t.Fatalf("cache holds %d entries, cap 2", l)
		}
	}
	// "b" was the least recently used when "c" came, so it was asked again.
	got := []int{srv.CountFor("a.example.com", dns.TypeTXT), srv.CountFor("b.example.com", dns.TypeTXT), srv.CountFor("c.example.com", dns.TypeTXT)}
	if !slices.Equal(got, []int{1, 2, 1}) {
		t.Errorf("queries per name a,b,c = %v, want [1 2 1]", got)
	}
}

func TestNoCache(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	srv.AddTXT("example.com", "x")
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}, CacheEntries: -1})
	r.LookupTXT(context.Background(), "example.com")
	r.LookupTXT(context.Background(), "example.com")
	if n := srv.Count(); n != 2 {
		t.Errorf("asked %d times with the cache off, want 2", n)
	}
}

func TestOtherTypes(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	srv.AddA("mail.example.com", "192.0.2.10")
	srv.AddAAAA("mail.example.com", "2001:db8::10")
	srv.AddAAAA("v6only.example.com", "2001:db8::11")
	srv.AddMX("example.com", "mail.example.com", 10)
	srv.AddPTR("192.0.2.10", "mail.example.com")
	srv.Timeout("v4ok.example.com")
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}, Timeout: 300 * time.Millisecond})
	ctx := context.Background()

	ips, err := r.LookupIPAddr(ctx, "mail.example.com")
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, ip := range ips {
		s = append(s, ip.IP.String())
	}
	slices.Sort(s)
	if !slices.Equal(s, []string{"192.0.2.10", "2001:db8::10"}) {
		t.Errorf("LookupIPAddr = %v", s)
	}
	if ips, err := r.LookupIPAddr(ctx, "v6only.example.com"); err != nil || len(ips) != 1 {
		t.Errorf("v6 only: %v, %v", ips, err)
	}
	if _, err := r.LookupIPAddr(ctx, "nx.example.com"); !IsNotFound(err) {
		t.Errorf("nx: %v, want not found", err)
	}
	if _, err := r.LookupIPAddr(ctx, "v4ok.example.com"); !IsTemporary(err) {
		t.Errorf("timeout: %v, want temporary", err)
	}

	mx, err := r.LookupMX(ctx, "example.com")
	if err != nil || len(mx) != 1 || mx[0].Host != "mail.example.com." || mx[0].Pref != 10 {
		t.Errorf("LookupMX = %v, %v", mx, err)
	}
	names, err := r.LookupAddr(ctx, "::ffff:192.0.2.10")
	if err != nil || !slices.Equal(names, []string{"mail.example.com."}) {
		t.Errorf("LookupAddr = %v, %v", names, err)
	}
	if _, err := r.LookupAddr(ctx, "not-an-ip"); err == nil || IsTemporary(err) {
		t.Errorf("LookupAddr(not-an-ip) = %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	r, err := newWith(Config{}, "testdata/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Servers(); !slices.Equal(got, []string{"192.0.2.53:53", "[2001:db8::53]:53"}) {
		t.Errorf("servers from resolv.conf = %v", got)
	}
	if _, err := newWith(Config{}, "testdata/missing"); err == nil {
		t.Error("no servers and no resolv.conf: want an error")
	}
	for _, bad := range []string{"192.0.2.53", ":53", "host:", "[::1"} {
		if _, err := New(Config{Servers: []string{bad}}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("server %q: err %v, want one naming it", bad, err)
		}
	}
}

func TestIsTemporary(t *testing.T) {
	t.Parallel()
	if IsTemporary(nil) || IsNotFound(nil) {
		t.Error("nil is neither temporary nor not found")
	}
	if !IsTemporary(errors.New("unknown")) {
		t.Error("unknown errors must count as temporary")
	}
	if IsTemporary(&net.DNSError{IsNotFound: true}) {
		t.Error("not found is not temporary")
	}
}

// TestConcurrent shares cached answers between goroutines; -race checks
// that reading them changes nothing.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t)
	srv.AddTXT("example.com", "v=DKIM1; p="+strings.Repeat("A", 300))
	srv.AddA("example.com", "192.0.2.1")
	r, _ := newResolver(t, Config{Servers: []string{srv.Addr()}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if txt, err := r.LookupTXT(context.Background(), "example.com"); err != nil || len(txt) != 1 {
					t.Errorf("LookupTXT = %q, %v", txt, err)
				}
				if ips, err := r.LookupIPAddr(context.Background(), "example.com"); err != nil || len(ips) != 1 {
					t.Errorf("LookupIPAddr = %v, %v", ips, err)
				}
			}
		})
	}
	wg.Wait()
	// Concurrent first lookups share one query per type, or a few at most
	// when they miss each other; 160 lookups of each must not reach the
	// server 160 times.
	if n := srv.CountFor("example.com", dns.TypeTXT); n > 8 {
		t.Errorf("TXT asked %d times", n)
	}
}
