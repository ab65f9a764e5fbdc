package egress

import (
	"errors"
	"fmt"
	"net/netip"
)

// Class names a kind of address the guard treats specially. The names are
// fixed words, safe for logs and DSN diagnostics.
type Class string

// Classes refused always: nothing legitimate is reached there over HTTP,
// and the cloud metadata service hands out credentials.
const (
	ClassMetadata    Class = "cloud metadata"
	ClassLinkLocal   Class = "link-local"
	ClassUnspecified Class = "unspecified"
	ClassMulticast   Class = "multicast"
	ClassBroadcast   Class = "broadcast"
	ClassReserved    Class = "reserved"
)

// Classes refused unless private targets are allowed: on-premises
// applications legitimately live there, but so do admin interfaces.
const (
	ClassLoopback Class = "loopback"
	ClassPrivate  Class = "private"
	ClassShared   Class = "shared (CGNAT)"
)

// Private reports whether a route may opt in to c; the other classes are
// refused whatever the route says.
func (c Class) Private() bool {
	return c == ClassLoopback || c == ClassPrivate || c == ClassShared
}

// ErrRefused matches every *RefusedError with errors.Is.
var ErrRefused = errors.New("egress: address refused")

// RefusedError says a connection was not made because of where it led. It
// names the host and address but never the URL, which may carry a token.
type RefusedError struct {
	Host  string // the name dialled; the address itself for a literal
	Addr  netip.Addr
	Class Class
}

func (e *RefusedError) Error() string {
	if e.Host == "" || e.Host == e.Addr.String() {
		return fmt.Sprintf("egress: refused %s address %s", e.Class, e.Addr)
	}
	return fmt.Sprintf("egress: refused %s: resolves to %s address %s", e.Host, e.Class, e.Addr)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ranges lists the special ranges, most specific first: the first match
// names the class, so the metadata addresses win over the ranges that hold
// them.
var ranges = []struct {
	prefix netip.Prefix
	class  Class
}{
	// AWS, GCP, Azure and OCI (IPv4 and AWS's IPv6), and Alibaba Cloud,
	// whose address sits in the shared range a private route may reach.
	{netip.MustParsePrefix("169.254.169.254/32"), ClassMetadata},
	{netip.MustParsePrefix("fd00:ec2::254/128"), ClassMetadata},
	{netip.MustParsePrefix("100.100.100.200/32"), ClassMetadata},

	{netip.MustParsePrefix("0.0.0.0/8"), ClassUnspecified},
	{netip.MustParsePrefix("::/128"), ClassUnspecified},
	{netip.MustParsePrefix("169.254.0.0/16"), ClassLinkLocal},
	{netip.MustParsePrefix("fe80::/10"), ClassLinkLocal},
	{netip.MustParsePrefix("224.0.0.0/4"), ClassMulticast},
	{netip.MustParsePrefix("ff00::/8"), ClassMulticast},
	{netip.MustParsePrefix("255.255.255.255/32"), ClassBroadcast},
	{netip.MustParsePrefix("240.0.0.0/4"), ClassReserved},

	{netip.MustParsePrefix("127.0.0.0/8"), ClassLoopback},
	{netip.MustParsePrefix("::1/128"), ClassLoopback},
	{netip.MustParsePrefix("10.0.0.0/8"), ClassPrivate},
	{netip.MustParsePrefix("172.16.0.0/12"), ClassPrivate},
	{netip.MustParsePrefix("192.168.0.0/16"), ClassPrivate},
	{netip.MustParsePrefix("fc00::/7"), ClassPrivate},
	{netip.MustParsePrefix("fec0::/10"), ClassPrivate}, // deprecated site-local, still routed by some networks
	{netip.MustParsePrefix("100.64.0.0/10"), ClassShared},
}

// nat64 is the well-known NAT64 prefix (RFC 6052): a gateway on the path
// turns 64:ff9b::a.b.c.d into a.b.c.d, so the embedded address decides.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Classify returns the class of a, or "" for an ordinary public address.
// IPv4-mapped and NAT64 addresses are judged by the IPv4 address they
// carry, and a zone is ignored.
func Classify(a netip.Addr) Class {
	a = a.WithZone("").Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, r := range ranges {
		if r.prefix.Contains(a) {
			return r.class
		}
	}
	return ""
}

// check returns a *RefusedError when a may not be reached.
func check(host string, a netip.Addr, allowPrivate bool) error {
	if !a.IsValid() {
		return &RefusedError{Host: host, Addr: a, Class: ClassUnspecified}
	}
	c := Classify(a)
	if c == "" || allowPrivate && c.Private() {
		return nil
	}
	return &RefusedError{Host: host, Addr: a.WithZone(""), Class: c}
}
