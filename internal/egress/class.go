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
// and the cloud metadata service hands out credentials. No allow entry
// opens them.
const (
	ClassMetadata    Class = "cloud metadata"
	ClassLinkLocal   Class = "link-local"
	ClassUnspecified Class = "unspecified"
	ClassMulticast   Class = "multicast"
	ClassBroadcast   Class = "broadcast"
)

// Classes refused unless private targets are allowed (allow_private, or an
// allow entry that covers the address): on-premises applications
// legitimately live there, but so do admin interfaces.
const (
	ClassLoopback Class = "loopback"
	ClassPrivate  Class = "private"
	ClassShared   Class = "shared (CGNAT)"
)

// Classes of the IANA special-purpose registries that are not public
// destinations: refused unless an allow entry names them (a lab network on
// 198.18.0.0/15, a resolver that answers with fake addresses there);
// allow_private does not open them.
const (
	ClassReserved      Class = "reserved"
	ClassBenchmarking  Class = "benchmarking"
	ClassDocumentation Class = "documentation"
	ClassSpecial       Class = "special-purpose"
)

// Private reports whether allow_private opens c.
func (c Class) Private() bool {
	return c == ClassLoopback || c == ClassPrivate || c == ClassShared
}

// Allowable reports whether an allow entry (a CIDR or a host name) may
// open c. The always-refused classes and public addresses ("") are not.
func (c Class) Allowable() bool {
	switch c {
	case "", ClassMetadata, ClassLinkLocal, ClassUnspecified, ClassMulticast, ClassBroadcast:
		return false
	}
	return true
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

type classRange struct {
	prefix netip.Prefix
	class  Class
}

func r(p string, c Class) classRange { return classRange{netip.MustParsePrefix(p), c} }

// ranges4 lists the IPv4 ranges that are not public, most specific first:
// the first match names the class, so the metadata addresses win over the
// ranges that hold them. Besides cloud metadata and multicast, it is the
// IANA IPv4 Special-Purpose Address Registry (2025), every entry, the
// globally reachable ones included: anycast PCP and TURN, AS112 and AMT
// serve no webhook, so nothing there is a place a route should POST to.
var ranges4 = []classRange{
	// AWS, GCP, Azure and OCI, and Alibaba Cloud, whose address sits in
	// the shared range a private route may reach.
	r("169.254.169.254/32", ClassMetadata),
	r("100.100.100.200/32", ClassMetadata),

	r("0.0.0.0/8", ClassUnspecified), // "this network" (RFC 791)
	r("10.0.0.0/8", ClassPrivate),    // RFC 1918
	r("100.64.0.0/10", ClassShared),  // RFC 6598
	r("127.0.0.0/8", ClassLoopback),  // RFC 1122
	r("169.254.0.0/16", ClassLinkLocal),
	r("172.16.0.0/12", ClassPrivate),
	r("192.0.0.0/24", ClassSpecial), // IETF protocol assignments (DS-Lite, PCP and TURN anycast, NAT64 discovery)
	r("192.0.2.0/24", ClassDocumentation),
	r("192.31.196.0/24", ClassSpecial), // AS112-v4
	r("192.52.193.0/24", ClassSpecial), // AMT
	r("192.88.99.0/24", ClassReserved), // deprecated 6to4 relay anycast (RFC 7526), 6a44
	r("192.168.0.0/16", ClassPrivate),
	r("192.175.48.0/24", ClassSpecial), // direct delegation AS112
	r("198.18.0.0/15", ClassBenchmarking),
	r("198.51.100.0/24", ClassDocumentation),
	r("203.0.113.0/24", ClassDocumentation),
	r("224.0.0.0/4", ClassMulticast),
	r("255.255.255.255/32", ClassBroadcast),
	r("240.0.0.0/4", ClassReserved),
}

// ranges6 is the same for IPv6, after the forms that embed an IPv4
// address (see Classify): the IANA IPv6 Special-Purpose Address Registry
// (2025), every entry. Addresses outside 2000::/3 that no entry names are
// reserved by the IETF (IPv6 Address Space registry), so they are refused
// too.
var ranges6 = []classRange{
	r("fd00:ec2::254/128", ClassMetadata), // AWS over IPv6

	r("::/128", ClassUnspecified),
	r("::1/128", ClassLoopback),
	r("100::/64", ClassSpecial),         // discard-only (RFC 6666)
	r("100:0:0:1::/64", ClassSpecial),   // dummy prefix (RFC 9780)
	r("2001:2::/48", ClassBenchmarking), // inside 2001::/23, more specific first
	r("2001:db8::/32", ClassDocumentation),
	r("2001::/23", ClassSpecial),         // IETF protocol assignments: anycast PCP, TURN, DNS-SD; AMT; AS112; ORCHID; DETs
	r("2620:4f:8000::/48", ClassSpecial), // direct delegation AS112
	r("3fff::/20", ClassDocumentation),   // RFC 9637
	r("5f00::/16", ClassReserved),        // SRv6 SIDs (RFC 9602), never a host
	r("fc00::/7", ClassPrivate),          // unique local
	r("fe80::/10", ClassLinkLocal),
	r("fec0::/10", ClassPrivate), // deprecated site-local, still routed by some networks
	r("ff00::/8", ClassMulticast),
}

// The IPv6 forms that carry an IPv4 address. A packet to one of them ends
// at (or, for NAT64, is translated to) the IPv4 address inside, so that
// address decides when it is not public.
var (
	nat64         = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052 well-known prefix
	nat64Local    = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215 local-use
	v4Compat      = netip.MustParsePrefix("::/96")          // deprecated IPv4-compatible (RFC 4291)
	sixToFour     = netip.MustParsePrefix("2002::/16")      // RFC 3056
	teredo        = netip.MustParsePrefix("2001::/32")      // RFC 4380
	globalUnicast = netip.MustParsePrefix("2000::/3")
)

// Classify returns the class of a, or "" for an ordinary public address.
// A zone is ignored. IPv4-mapped, IPv4-compatible, NAT64, 6to4 and Teredo
// addresses are judged by the IPv4 address they carry when that address
// is not public: 64:ff9b::7f00:1 is loopback, 2002:a9fe:a9fe:: is cloud
// metadata. With a public IPv4 inside, NAT64's well-known prefix, 6to4 and
// Teredo are public (they reach that host); the local-use NAT64 prefix is
// private (a site's own translator) and IPv4-compatible is reserved.
func Classify(a netip.Addr) Class {
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return ClassUnspecified
	}
	if a.Is4() {
		return classify4(a)
	}
	b := a.As16()
	switch {
	case a == netip.IPv6Unspecified():
		return ClassUnspecified
	case a == netip.IPv6Loopback():
		return ClassLoopback
	case nat64.Contains(a):
		return classify4(netip.AddrFrom4([4]byte(b[12:16])))
	case nat64Local.Contains(a):
		// The translator's prefix length (48 to 96) decides where the IPv4
		// address sits; the worst of the places it could be decides.
		return worst(ClassPrivate, localNAT64Candidates(b)...)
	case v4Compat.Contains(a):
		if c := classify4(netip.AddrFrom4([4]byte(b[12:16]))); c != "" {
			return c
		}
		return ClassReserved
	case sixToFour.Contains(a):
		return classify4(netip.AddrFrom4([4]byte(b[2:6])))
	case teredo.Contains(a):
		// The server's address, then the client's (stored inverted).
		server := netip.AddrFrom4([4]byte(b[4:8]))
		client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
		return worst("", classify4(server), classify4(client))
	}
	for _, r := range ranges6 {
		if r.prefix.Contains(a) {
			return r.class
		}
	}
	if !globalUnicast.Contains(a) {
		return ClassReserved
	}
	return ""
}

func classify4(a netip.Addr) Class {
	for _, r := range ranges4 {
		if r.prefix.Contains(a) {
			return r.class
		}
	}
	return ""
}

// Embedded returns the IPv4 address a carries (IPv4-mapped,
// IPv4-compatible, NAT64 well-known prefix, 6to4, the client of Teredo),
// and whether it carries one. An IPv4 address is its own.
func Embedded(a netip.Addr) (netip.Addr, bool) {
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a, true
	}
	b := a.As16()
	switch {
	case a == netip.IPv6Unspecified(), a == netip.IPv6Loopback():
		return netip.Addr{}, false
	case nat64.Contains(a), v4Compat.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case teredo.Contains(a):
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return netip.Addr{}, false
}

// localNAT64Candidates returns the classes of the IPv4 address an address
// under a /48 translator prefix would carry with each RFC 6052 prefix
// length from 48 to 96 (bits 64-71 are always skipped). A place that
// holds 0.0.0.0/8 is taken for padding, not an address: no translator
// sends there.
func localNAT64Candidates(b [16]byte) []Class {
	var out []Class
	for _, v4 := range [][4]byte{
		{b[6], b[7], b[9], b[10]},   // /48
		{b[7], b[9], b[10], b[11]},  // /56
		{b[9], b[10], b[11], b[12]}, // /64
		[4]byte(b[12:16]),           // /96
	} {
		if c := classify4(netip.AddrFrom4(v4)); c != ClassUnspecified {
			out = append(out, c)
		}
	}
	return out
}

// severity orders classes from public to always refused, for worst.
func severity(c Class) int {
	switch {
	case c == "":
		return 0
	case c == ClassLoopback: // this host's own services
		return 2
	case c.Private():
		return 1
	case c.Allowable():
		return 3
	}
	return 4
}

// worst returns the most refused of base and cs.
func worst(base Class, cs ...Class) Class {
	w := base
	for _, c := range cs {
		if severity(c) > severity(w) {
			w = c
		}
	}
	return w
}
