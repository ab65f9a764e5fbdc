package egress

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Allow is what one route may reach besides public addresses. The zero
// value allows nothing more. Whatever it says, the always-refused classes
// (cloud metadata, link-local, unspecified, multicast, broadcast) stay
// refused.
type Allow struct {
	// Private opens every loopback, private and shared (CGNAT) address:
	// the allow_private: true shorthand.
	Private bool
	// Prefixes open the addresses in them. An IPv6 address that carries
	// an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) is in a prefix
	// when either it or the IPv4 address inside is.
	Prefixes []netip.Prefix
	// Hosts open the addresses these names resolve to when the URL names
	// them: lower case, without a trailing dot; "*.example.com" covers the
	// names under example.com, not example.com itself.
	Hosts []string
}

// ParseAllow reads allow entries as the configuration writes them: a CIDR
// ("10.1.0.0/16"), an address ("127.0.0.1", a one-address prefix) or a
// host name ("app.internal", "*.corp.example"). The error names the
// entry's index and says what was wrong.
func ParseAllow(entries []string) (Allow, error) {
	var a Allow
	for i, e := range entries {
		s := strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Masked() != p {
				return Allow{}, fmt.Errorf("[%d] %q has host bits set; write the network, %q, or the one address as %q", i, e, p.Masked(), p.Addr())
			}
			a.Prefixes = append(a.Prefixes, p)
			continue
		}
		if ip, err := netip.ParseAddr(s); err == nil {
			if ip.Zone() != "" {
				return Allow{}, fmt.Errorf("[%d] %q: write the address without a zone", i, e)
			}
			a.Prefixes = append(a.Prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		h, ok := normalHost(s)
		if !ok {
			return Allow{}, fmt.Errorf("[%d] %q is neither a CIDR network, an address nor a host name; write e.g. \"10.0.0.0/8\", \"127.0.0.1\" or \"app.internal\"", i, e)
		}
		a.Hosts = append(a.Hosts, h)
	}
	return a, nil
}

// normalHost lower-cases a host name, drops a trailing dot and checks its
// syntax: labels of letters, digits, hyphens and underscores, and an
// optional leading "*." wildcard.
func normalHost(s string) (string, bool) {
	h := strings.TrimSuffix(strings.ToLower(s), ".")
	rest, _ := strings.CutPrefix(h, "*.")
	if rest == "" || len(rest) > 253 {
		return "", false
	}
	for _, label := range strings.Split(rest, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return h, true
}

// IsZero reports whether a allows nothing besides public addresses.
func (a Allow) IsZero() bool { return !a.Private && len(a.Prefixes) == 0 && len(a.Hosts) == 0 }

// Key is a canonical text for a, equal for equal policies whatever their
// order, for caching one client per policy.
func (a Allow) Key() string {
	parts := make([]string, 0, len(a.Prefixes)+len(a.Hosts)+1)
	if a.Private {
		parts = append(parts, "private")
	}
	for _, p := range a.Prefixes {
		parts = append(parts, p.String())
	}
	for _, h := range a.Hosts {
		parts = append(parts, "host:"+h)
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), ",")
}

// String lists the policy for operators: "public only" or the entries.
func (a Allow) String() string {
	if a.IsZero() {
		return "public addresses only"
	}
	var parts []string
	if a.Private {
		parts = append(parts, "all loopback, private and shared addresses")
	}
	for _, p := range a.Prefixes {
		parts = append(parts, p.String())
	}
	parts = append(parts, a.Hosts...)
	return "public addresses and " + strings.Join(parts, ", ")
}

// hostAllowed reports whether the URL's host is one of a's names.
func (a Allow) hostAllowed(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, want := range a.Hosts {
		if suffix, wild := strings.CutPrefix(want, "*"); wild {
			if strings.HasSuffix(h, suffix) && len(h) > len(suffix) {
				return true
			}
		} else if h == want {
			return true
		}
	}
	return false
}

// containsAddr reports whether an allow prefix holds a or the IPv4 address
// it carries.
func (a Allow) containsAddr(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	v4, embeds := Embedded(ip)
	for _, p := range a.Prefixes {
		if p.Contains(ip) || embeds && p.Contains(v4) {
			return true
		}
	}
	return false
}

// Permits returns nil when a route with policy a may connect to ip,
// reached by dialling host (a name, or the address itself), and a
// *RefusedError otherwise. It is the one rule the guard applies at every
// check, and check-config applies to literal URLs.
func (a Allow) Permits(host string, ip netip.Addr) error {
	if !ip.IsValid() {
		return &RefusedError{Host: host, Addr: ip, Class: ClassUnspecified}
	}
	c := Classify(ip)
	switch {
	case c == "":
		return nil
	case a.Private && c.Private():
		return nil
	case c.Allowable() && (a.containsAddr(ip) || host != "" && a.hostAllowed(host)):
		return nil
	}
	return &RefusedError{Host: host, Addr: ip.WithZone(""), Class: c}
}
