package egress

import (
	"net/netip"
	"testing"
)

// Every entry of the IANA IPv4 and IPv6 Special-Purpose Address Registries
// (as of 2025), with its first and last address: none is public, including
// the entries the registries mark globally reachable (anycast PCP, TURN and
// DNS-SD, AS112, AMT, ORCHIDv2, drone DETs), where no application serves a
// webhook. The forms that carry an IPv4 address (64:ff9b::/96, 6to4,
// Teredo, IPv4-mapped) are judged by that address, below.
func TestSpecialPurposeRegistries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix string
		want   Class
	}{
		// IPv4 Special-Purpose Address Registry.
		{"0.0.0.0/8", ClassUnspecified},
		{"0.0.0.0/32", ClassUnspecified},
		{"10.0.0.0/8", ClassPrivate},
		{"100.64.0.0/10", ClassShared},
		{"127.0.0.0/8", ClassLoopback},
		{"169.254.0.0/16", ClassLinkLocal},
		{"172.16.0.0/12", ClassPrivate},
		{"192.0.0.0/24", ClassSpecial},
		{"192.0.0.0/29", ClassSpecial},   // IPv4 service continuity prefix
		{"192.0.0.8/32", ClassSpecial},   // IPv4 dummy address
		{"192.0.0.9/32", ClassSpecial},   // PCP anycast
		{"192.0.0.10/32", ClassSpecial},  // TURN anycast
		{"192.0.0.170/32", ClassSpecial}, // NAT64/DNS64 discovery
		{"192.0.0.171/32", ClassSpecial},
		{"192.0.2.0/24", ClassDocumentation},
		{"192.31.196.0/24", ClassSpecial}, // AS112-v4
		{"192.52.193.0/24", ClassSpecial}, // AMT
		{"192.88.99.0/24", ClassReserved}, // deprecated 6to4 relay anycast
		{"192.88.99.2/32", ClassReserved}, // 6a44 relay anycast
		{"192.168.0.0/16", ClassPrivate},
		{"192.175.48.0/24", ClassSpecial}, // direct delegation AS112
		{"198.18.0.0/15", ClassBenchmarking},
		{"198.51.100.0/24", ClassDocumentation},
		{"203.0.113.0/24", ClassDocumentation},
		{"240.0.0.0/4", ClassReserved},
		{"255.255.255.255/32", ClassBroadcast},

		// IPv6 Special-Purpose Address Registry.
		{"::1/128", ClassLoopback},
		{"::/128", ClassUnspecified},
		{"100::/64", ClassSpecial},       // discard-only
		{"100:0:0:1::/64", ClassSpecial}, // dummy IPv6 prefix
		{"2001::/23", ClassSpecial},      // IETF protocol assignments (2001::/32 Teredo aside)
		{"2001:1::1/128", ClassSpecial},  // PCP anycast
		{"2001:1::2/128", ClassSpecial},  // TURN anycast
		{"2001:1::3/128", ClassSpecial},  // DNS-SD SRP anycast
		{"2001:2::/48", ClassBenchmarking},
		{"2001:3::/32", ClassSpecial},     // AMT
		{"2001:4:112::/48", ClassSpecial}, // AS112-v6
		{"2001:10::/28", ClassSpecial},    // deprecated ORCHID
		{"2001:20::/28", ClassSpecial},    // ORCHIDv2
		{"2001:30::/28", ClassSpecial},    // drone remote ID DETs
		{"2001:db8::/32", ClassDocumentation},
		{"2620:4f:8000::/48", ClassSpecial}, // direct delegation AS112
		{"3fff::/20", ClassDocumentation},
		{"5f00::/16", ClassReserved}, // SRv6 SIDs
		{"fc00::/7", ClassPrivate},
		{"fe80::/10", ClassLinkLocal},

		// Not in the special-purpose registries, refused all the same.
		{"224.0.0.0/4", ClassMulticast},
		{"ff00::/8", ClassMulticast},
		{"fec0::/10", ClassPrivate},     // deprecated site-local
		{"4000::/2", ClassReserved},     // outside 2000::/3: reserved by the IETF
		{"8000::/1", ClassReserved},     // up to fbff:..., and the tail past ff00::/8 is multicast
		{"200::/7", ClassReserved},      // ex-NSAP
		{"64:ff9a::/32", ClassReserved}, // next to the NAT64 prefix, inside ::/8
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.prefix)
		first, last := p.Masked().Addr(), lastAddr(p)
		for _, a := range []netip.Addr{first, last} {
			if tt.prefix == "2001::/23" && teredo.Contains(a) {
				continue // Teredo carries an address: see TestEmbeddedIPv4
			}
			if (tt.prefix == "8000::/1" || tt.prefix == "240.0.0.0/4") && a == last {
				continue // ffff:... is multicast, 255.255.255.255 broadcast
			}
			if got := Classify(a); got != tt.want {
				t.Errorf("%s: Classify(%s) = %q, want %q", tt.prefix, a, got, tt.want)
			}
		}
	}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// The neighbours of the special ranges are public: the table above is not
// passing by refusing everything.
func TestSpecialRangesNeighboursPublic(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"1.0.0.1", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255",
		"128.0.0.0", "172.15.255.255", "172.32.0.0", "191.255.255.255", "192.0.1.0", "192.0.3.0",
		"192.31.195.255", "192.31.197.0", "192.52.192.255", "192.52.194.0", "192.88.98.255", "192.88.100.0",
		"192.167.255.255", "192.169.0.0", "192.175.47.255", "192.175.49.0", "198.17.255.255", "198.20.0.0",
		"198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0", "223.255.255.255",
		"2001:200::", "2001:db7:ffff::1", "2001:db9::", "2600::1", "2620:4f:7fff::1", "2620:4f:8001::",
		"3ffe:ffff::1", "3fff:1000::", "2a00:1450:4001::200e",
	} {
		if got := Classify(netip.MustParseAddr(s)); got != "" {
			t.Errorf("Classify(%s) = %q, want public", s, got)
		}
	}
}

// The IPv6 forms that carry an IPv4 address are judged by it where it is
// not public.
func TestEmbeddedIPv4(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want Class
	}{
		// IPv4-mapped (::ffff:0:0/96).
		{"::ffff:127.0.0.1", ClassLoopback},
		{"::ffff:169.254.169.254", ClassMetadata},
		{"::ffff:198.18.0.1", ClassBenchmarking},
		{"::ffff:8.8.8.8", ""},
		// NAT64 well-known prefix: public inside is public.
		{"64:ff9b::7f00:1", ClassLoopback},
		{"64:ff9b::a9fe:a9fe", ClassMetadata},
		{"64:ff9b::c000:2", ClassSpecial}, // 192.0.0.2
		{"64:ff9b::c612:1", ClassBenchmarking},
		{"64:ff9b::808:808", ""},
		// NAT64 local-use (64:ff9b:1::/48): a site's translator, private at
		// best, and the worst of where the IPv4 address may sit.
		{"64:ff9b:1::808:808", ClassPrivate},
		{"64:ff9b:1::a9fe:a9fe", ClassMetadata},     // /96
		{"64:ff9b:1:a9fe:a9:fe00::", ClassMetadata}, // /48: 169.254 | 169.254
		{"64:ff9b:1:7f:0:100::", ClassLoopback},     // /56: 127 | 0.0.1
		{"64:ff9b:1:0:7f:1:0:0", ClassLoopback},     // /64: the u octet skipped, then 127.0.0.1
		// IPv4-compatible (::/96, deprecated): reserved at best.
		{"::127.0.0.2", ClassLoopback},
		{"::169.254.169.254", ClassMetadata},
		{"::10.0.0.1", ClassPrivate},
		{"::8.8.8.8", ClassReserved},
		{"::1", ClassLoopback},
		{"::", ClassUnspecified},
		// 6to4 (2002::/16): the IPv4 address in bits 16-47.
		{"2002:7f00:1::1", ClassLoopback},
		{"2002:a9fe:a9fe::", ClassMetadata},
		{"2002:c0a8:101::1", ClassPrivate},
		{"2002:c612:1::", ClassBenchmarking},
		{"2002:808:808::1", ""},
		// Teredo (2001::/32): the server in bits 32-63, the client inverted
		// in the last 32 bits.
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", ClassLoopback}, // client 127.0.0.1
		{"2001:0:4136:e378:8000:63bf:5601:5601", ClassMetadata}, // client 169.254.169.254
		{"2001:0:a00:1:8000:63bf:f7f7:f7f7", ClassPrivate},      // server 10.0.0.1, client 8.8.8.8
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", ""},            // server 65.54.227.120, client 8.8.8.8
	}
	for _, tt := range tests {
		if got := Classify(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Classify(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
