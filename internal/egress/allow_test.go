package egress

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseAllow(t *testing.T) {
	t.Parallel()
	a, err := ParseAllow([]string{"10.1.0.0/16", "127.0.0.1", "fd00::/8", "App.Internal.", "*.corp.example", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Key(), "10.1.0.0/16,127.0.0.1/32,::1/128,fd00::/8,host:*.corp.example,host:app.internal"; got != want {
		t.Errorf("Key() = %q, want %q", got, want)
	}
	b, _ := ParseAllow([]string{"app.internal", "::1", "*.corp.example", "127.0.0.1/32", "fd00::/8", "10.1.0.0/16"})
	if a.Key() != b.Key() {
		t.Errorf("order changes the key: %q vs %q", a.Key(), b.Key())
	}
	for _, bad := range []string{"10.1.2.3/16", "not a host", "-x.example", "a..b", "", "http://app.internal", "fe80::1%eth0/64"} {
		_, err := ParseAllow([]string{"10.0.0.0/8", bad})
		if err == nil || !strings.HasPrefix(err.Error(), "[1] ") {
			t.Errorf("ParseAllow(%q) = %v, want an error naming entry [1]", bad, err)
		}
	}
	if !(Allow{}).IsZero() || (Allow{Private: true}).IsZero() || a.IsZero() {
		t.Error("IsZero wrong")
	}
}

// One allowed address is not every private address: the point of an
// allow list over allow_private.
func TestAllowPermits(t *testing.T) {
	t.Parallel()
	a, err := ParseAllow([]string{"127.0.0.1/32", "10.1.0.0/16", "198.18.0.0/15", "app.internal", "*.corp.example", "169.254.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, addr string
		ok         bool
	}{
		{"", "127.0.0.1", true},
		{"", "::ffff:127.0.0.1", true},
		{"", "64:ff9b::7f00:1", true}, // NAT64 of 127.0.0.1: the address inside is in the list
		{"", "127.0.0.2", false},
		{"", "::1", false},
		{"", "10.1.200.3", true},
		{"", "10.2.0.1", false},
		{"", "192.168.1.1", false},
		{"", "198.19.0.1", true}, // benchmarking, named
		{"", "8.8.8.8", true},
		{"app.internal", "192.168.7.7", true},
		{"APP.internal.", "192.168.7.7", true},
		{"other.internal", "192.168.7.7", false},
		{"x.corp.example", "172.16.0.9", true},
		{"corp.example", "172.16.0.9", false},
		{"app.internal", "169.254.169.254", false}, // metadata: no entry opens it
		{"", "169.254.10.1", false},                // link-local: listed, refused all the same
		{"app.internal", "224.0.0.1", false},
		{"", "", false}, // invalid
	}
	for _, tt := range tests {
		var ip netip.Addr
		if tt.addr != "" {
			ip = netip.MustParseAddr(tt.addr)
		}
		err := a.Permits(tt.host, ip)
		if (err == nil) != tt.ok {
			t.Errorf("Permits(%q, %s) = %v, want ok=%v", tt.host, tt.addr, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("Permits(%q, %s) = %v, not ErrRefused", tt.host, tt.addr, err)
		}
	}
	// allow_private opens the private classes but not the other special ones.
	p := Allow{Private: true}
	for addr, ok := range map[string]bool{"127.0.0.9": true, "10.9.9.9": true, "100.64.0.1": true, "fd00::1": true,
		"198.18.0.1": false, "192.0.0.8": false, "192.0.2.1": false, "169.254.169.254": false, "100.100.100.200": false} {
		if err := p.Permits("", netip.MustParseAddr(addr)); (err == nil) != ok {
			t.Errorf("allow_private: Permits(%s) = %v, want ok=%v", addr, err, ok)
		}
	}
}

// A host name in the allow list opens what that name resolves to, checked
// on the address dialled; the same address reached by another name, or
// the name resolving to metadata, is refused. A CIDR opens only its
// addresses, at connect time too.
func TestDialWithAllowList(t *testing.T) {
	t.Parallel()
	port, accepted := listener(t)
	r := &fakeResolver{answers: map[string][]string{
		"app.internal":   {"127.0.0.1"},
		"other.internal": {"127.0.0.1"},
		"imds.internal":  {"169.254.169.254"},
	}}
	allow, err := ParseAllow([]string{"app.internal", "imds.internal", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	g := Guard{Allow: allow, Resolver: r}
	conn, err := g.DialContext(dialCtx(t), "tcp", net.JoinHostPort("app.internal", port))
	if err != nil {
		t.Fatalf("allowed name: %v", err)
	}
	conn.Close()
	for _, host := range []string{"other.internal", "127.0.0.1", "imds.internal"} {
		conn, err := g.DialContext(dialCtx(t), "tcp", net.JoinHostPort(host, port))
		if conn != nil {
			conn.Close()
		}
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want refused", host, err)
		}
	}
	// The connect-time hook holds the same line: a name's check does not
	// carry over to a socket connecting elsewhere.
	if err := allow.control("app.internal", "127.0.0.1:80"); err != nil {
		t.Errorf("control(app.internal, loopback) = %v", err)
	}
	if err := allow.control("", "127.0.0.1:80"); !errors.Is(err, ErrRefused) {
		t.Errorf("control(no name, loopback) = %v, want refused", err)
	}
	if err := (Guard{Allow: allow}).control("tcp", "10.3.3.3:80", nil); err != nil {
		t.Errorf("control(listed network) = %v", err)
	}
	if err := (Guard{Allow: allow}).control("tcp", "192.168.3.3:80", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("control(unlisted private) = %v, want refused", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load(); n != 1 {
		t.Errorf("listener accepted %d connections, want 1", n)
	}
}
