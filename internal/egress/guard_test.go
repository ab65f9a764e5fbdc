package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a map and counts lookups; a missing name is
// NXDOMAIN.
type fakeResolver struct {
	answers map[string][]string
	lookups atomic.Int32
}

var _ Resolver = (*fakeResolver)(nil)

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	list, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

// listener accepts and counts connections on 127.0.0.1 until the test ends.
func listener(t *testing.T) (port string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, accepted
}

func dialCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Literal addresses of every refused class are refused before any
// connection is tried, with the class in the error.
func TestDialRefusesLiterals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr         string
		class        Class
		allowPrivate bool
	}{
		{"169.254.169.254", ClassMetadata, false},
		{"169.254.169.254", ClassMetadata, true},
		{"[fd00:ec2::254]", ClassMetadata, true},
		{"169.254.0.1", ClassLinkLocal, true},
		{"[fe80::1]", ClassLinkLocal, true},
		{"0.0.0.0", ClassUnspecified, true},
		{"[::]", ClassUnspecified, true},
		{"224.0.0.1", ClassMulticast, true},
		{"[ff02::1]", ClassMulticast, true},
		{"255.255.255.255", ClassBroadcast, true},
		{"127.0.0.1", ClassLoopback, false},
		{"[::1]", ClassLoopback, false},
		{"[::ffff:127.0.0.1]", ClassLoopback, false},
		{"10.0.0.1", ClassPrivate, false},
		{"172.16.0.1", ClassPrivate, false},
		{"192.168.1.1", ClassPrivate, false},
		{"[fd00::1]", ClassPrivate, false},
		{"100.64.0.1", ClassShared, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/allow=%v", tt.addr, tt.allowPrivate), func(t *testing.T) {
			t.Parallel()
			r := &fakeResolver{}
			g := Guard{AllowPrivate: tt.allowPrivate, Resolver: r}
			conn, err := g.DialContext(dialCtx(t), "tcp", tt.addr+":80")
			if conn != nil {
				conn.Close()
			}
			var re *RefusedError
			if !errors.As(err, &re) || re.Class != tt.class {
				t.Fatalf("DialContext = %v, want a refusal of class %q", err, tt.class)
			}
			if !strings.Contains(err.Error(), string(tt.class)) {
				t.Errorf("error %q does not name the class", err)
			}
			if r.lookups.Load() != 0 {
				t.Errorf("a literal address was looked up")
			}
		})
	}
}

func TestDialLoopbackAllowedWhenOptedIn(t *testing.T) {
	t.Parallel()
	port, accepted := listener(t)
	conn, err := Guard{AllowPrivate: true}.DialContext(dialCtx(t), "tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("DialContext: %v", err)
	}
	conn.Close()
	if _, err := (Guard{}).DialContext(dialCtx(t), "tcp", "127.0.0.1:"+port); !errors.Is(err, ErrRefused) {
		t.Fatalf("without AllowPrivate: %v, want refused", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load(); n != 1 {
		t.Errorf("listener accepted %d connections, want 1 (the refused dial must not connect)", n)
	}
}

// A name is judged by what it resolves to, not by how it looks.
func TestDialHostnameResolvingInternally(t *testing.T) {
	t.Parallel()
	port, accepted := listener(t)
	r := &fakeResolver{answers: map[string][]string{
		"app.example":      {"127.0.0.1"},
		"imds.example":     {"169.254.169.254"},
		"mixed.example":    {"93.184.216.34", "fd00:ec2::254"},
		"v6mapped.example": {"::ffff:10.0.0.7"},
	}}
	tests := []struct {
		host         string
		allowPrivate bool
		class        Class // "" for allowed
	}{
		{"app.example", false, ClassLoopback},
		{"app.example", true, ""},
		{"imds.example", true, ClassMetadata},
		{"mixed.example", false, ClassMetadata},
		{"v6mapped.example", false, ClassPrivate},
	}
	for _, tt := range tests {
		g := Guard{AllowPrivate: tt.allowPrivate, Resolver: r}
		conn, err := g.DialContext(dialCtx(t), "tcp", net.JoinHostPort(tt.host, port))
		if tt.class == "" {
			if err != nil {
				t.Errorf("%s allow=%v: %v, want connected", tt.host, tt.allowPrivate, err)
				continue
			}
			conn.Close()
			continue
		}
		if conn != nil {
			conn.Close()
		}
		var re *RefusedError
		if !errors.As(err, &re) || re.Class != tt.class || re.Host != tt.host {
			t.Errorf("%s allow=%v: %v, want %q refused for the host", tt.host, tt.allowPrivate, err, tt.class)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load(); n != 1 {
		t.Errorf("listener accepted %d connections, want 1", n)
	}
}

func TestDialKeepsDNSErrors(t *testing.T) {
	t.Parallel()
	_, err := Guard{Resolver: &fakeResolver{}}.DialContext(dialCtx(t), "tcp", "nowhere.example:443")
	var dns *net.DNSError
	if !errors.As(err, &dns) || errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v, want a *net.DNSError", err)
	}
	_, err = Guard{Resolver: &fakeResolver{answers: map[string][]string{"empty.example": nil}}}.DialContext(dialCtx(t), "tcp", "empty.example:443")
	if !errors.As(err, &dns) {
		t.Fatalf("no answers: err = %v, want a *net.DNSError", err)
	}
}

func TestDialRefusesOtherNetworks(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"unix", "udp", "ip4:icmp"} {
		if _, err := (Guard{AllowPrivate: true}).DialContext(dialCtx(t), network, "127.0.0.1:53"); err == nil {
			t.Errorf("network %s allowed", network)
		}
	}
}

// The Control hook refuses at connect time, whatever resolution said: the
// last line against a path that skips the checks above.
func TestControlChecksTheConnectedAddress(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:80", "[::1]:80", "169.254.169.254:80", "not an address"} {
		if err := (Guard{}).control("tcp", addr, nil); !errors.Is(err, ErrRefused) {
			t.Errorf("control(%s) = %v, want refused", addr, err)
		}
	}
	if err := (Guard{AllowPrivate: true}).control("tcp4", "169.254.169.254:80", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("control(metadata, AllowPrivate) = %v, want refused", err)
	}
	if err := (Guard{AllowPrivate: true}).control("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("control(loopback, AllowPrivate) = %v", err)
	}
	if err := (Guard{}).control("tcp4", "93.184.216.34:443", nil); err != nil {
		t.Errorf("control(public) = %v", err)
	}
}

func TestClient(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	if NewTransport(Guard{}).Proxy != nil {
		t.Fatal("transport uses a proxy: only the proxy's address would be checked")
	}

	get := func(c *http.Client, path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(dialCtx(t), http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}

	_, err := get(NewClient(Guard{}), "/token?secret=s3cr3t")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("strict client: %v, want refused", err)
	}
	var ue *url.Error
	if errors.As(err, &ue) && strings.Contains(ue.Err.Error(), "s3cr3t") {
		t.Errorf("refusal %q carries the URL", ue.Err)
	}

	private := NewClient(Guard{AllowPrivate: true})
	resp, err := get(private, "/")
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("private client: %v %v", resp, err)
	}
	resp, err = get(private, "/moved")
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("redirect: %v %v, want the 302 itself", resp, err)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}
