package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want Class
	}{
		{"169.254.169.254", ClassMetadata},
		{"fd00:ec2::254", ClassMetadata},
		{"100.100.100.200", ClassMetadata},
		{"::ffff:169.254.169.254", ClassMetadata}, // IPv4-mapped
		{"64:ff9b::a9fe:a9fe", ClassMetadata},     // NAT64 of 169.254.169.254
		{"169.254.1.1", ClassLinkLocal},
		{"fe80::1", ClassLinkLocal},
		{"fe80::1%eth0", ClassLinkLocal},
		{"0.0.0.0", ClassUnspecified},
		{"0.1.2.3", ClassUnspecified},
		{"::", ClassUnspecified},
		{"224.0.0.1", ClassMulticast},
		{"239.255.255.250", ClassMulticast},
		{"ff02::1", ClassMulticast},
		{"255.255.255.255", ClassBroadcast},
		{"240.0.0.1", ClassReserved},
		{"127.0.0.1", ClassLoopback},
		{"127.255.0.9", ClassLoopback},
		{"::1", ClassLoopback},
		{"::ffff:127.0.0.1", ClassLoopback},
		{"10.1.2.3", ClassPrivate},
		{"172.16.0.1", ClassPrivate},
		{"172.31.255.255", ClassPrivate},
		{"192.168.1.1", ClassPrivate},
		{"fc00::1", ClassPrivate},
		{"fd12:3456::1", ClassPrivate},
		{"64:ff9b::a00:1", ClassPrivate}, // NAT64 of 10.0.0.1
		{"100.64.0.1", ClassShared},
		{"100.127.255.254", ClassShared},
		// Public, including the neighbours of the ranges above.
		{"8.8.8.8", ""},
		{"172.32.0.1", ""},
		{"172.15.255.255", ""},
		{"100.128.0.1", ""},
		{"169.255.0.1", ""},
		{"223.255.255.255", ""},
		{"2001:4860:4860::8888", ""},
		{"fd00:ec2::253", ClassPrivate},
	}
	for _, tt := range tests {
		if got := Classify(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Classify(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	always := []string{"169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.10.10", "fe80::1",
		"0.0.0.0", "::", "224.0.0.251", "ff02::fb", "255.255.255.255", "240.0.0.1"}
	optIn := []string{"127.0.0.1", "::1", "10.0.0.1", "172.20.0.1", "192.168.0.10", "fd00::1", "100.64.1.1"}
	public := []string{"93.184.216.34", "2606:2800:220:1::1"}
	for _, allow := range []bool{false, true} {
		g := Guard{AllowPrivate: allow}
		for _, s := range always {
			if err := g.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
				t.Errorf("AllowPrivate=%v: Check(%s) = %v, want refused", allow, s, err)
			}
		}
		for _, s := range optIn {
			err := g.Check(netip.MustParseAddr(s))
			if allow && err != nil {
				t.Errorf("AllowPrivate=true: Check(%s) = %v, want allowed", s, err)
			}
			if !allow && !errors.Is(err, ErrRefused) {
				t.Errorf("AllowPrivate=false: Check(%s) = %v, want refused", s, err)
			}
		}
		for _, s := range public {
			if err := g.Check(netip.MustParseAddr(s)); err != nil {
				t.Errorf("AllowPrivate=%v: Check(%s) = %v, want allowed", allow, s, err)
			}
		}
	}
	if err := (Guard{AllowPrivate: true}).Check(netip.Addr{}); !errors.Is(err, ErrRefused) {
		t.Errorf("Check(invalid) = %v, want refused", err)
	}
}

func TestRefusedErrorText(t *testing.T) {
	t.Parallel()
	e := &RefusedError{Host: "hooks.example", Addr: netip.MustParseAddr("10.0.0.1"), Class: ClassPrivate}
	if got, want := e.Error(), "egress: refused hooks.example: resolves to private address 10.0.0.1"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &RefusedError{Host: "169.254.169.254", Addr: netip.MustParseAddr("169.254.169.254"), Class: ClassMetadata}
	if got := e.Error(); !strings.Contains(got, "cloud metadata address 169.254.169.254") || strings.Count(got, "169.254.169.254") != 1 {
		t.Errorf("Error() = %q", got)
	}
}

// FuzzCheck: every address gets one consistent verdict: an IPv4-mapped
// address is judged as its IPv4 address, the connect-time hook agrees with
// Check, and allowing private ranges never admits an always-refused class.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{169, 254, 169, 254}, uint16(80))
	f.Add(netip.MustParseAddr("fd00:ec2::254").AsSlice(), uint16(80))
	f.Add(netip.MustParseAddr("64:ff9b::7f00:1").AsSlice(), uint16(443))
	f.Add([]byte{8, 8, 8, 8}, uint16(443))
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		c := Classify(a)
		if a.Is4() && Classify(netip.AddrFrom16(a.As16())) != c {
			t.Fatalf("%s and its IPv4-mapped form classify differently", a)
		}
		// Allowing every network opens everything but the always-refused
		// classes.
		all := Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
		if err := all.Permits("", a); (err == nil) != (c == "" || c.Allowable()) {
			t.Fatalf("Permits(%s) with every network allowed = %v for class %q", a, err, c)
		}
		for _, allow := range []bool{false, true} {
			g := Guard{AllowPrivate: allow}
			err := g.Check(a)
			if (err == nil) != (c == "" || allow && c.Private()) {
				t.Fatalf("Check(%s, allow=%v) = %v for class %q", a, allow, err, c)
			}
			ctl := g.control("tcp", netip.AddrPortFrom(a, port).String(), nil)
			if (ctl == nil) != (err == nil) {
				t.Fatalf("control and Check disagree on %s: %v vs %v", a, ctl, err)
			}
		}
	})
}
