package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Resolver looks up a host's addresses. *net.Resolver satisfies it; tests
// give their own to make a name resolve anywhere.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// minDialTimeout is the least time one address gets when a name resolves
// to several and the deadline is shared among them, as net.Dialer does.
const minDialTimeout = 2 * time.Second

// Guard decides which addresses outbound connections may reach, and dials
// only those. The zero value refuses every address that is not public
// (see Classify) and uses the system resolver.
//
// Every address is checked after resolution and again by the socket's
// Control hook just before connect, so neither DNS rebinding (a name that
// answers differently the second time) nor a redirect to another host gets
// past it: what is checked is what is connected to.
type Guard struct {
	// AllowPrivate lets connections reach loopback, private (RFC 1918,
	// fc00::/7) and shared (100.64.0.0/10) addresses, for on-premises
	// applications: Allow.Private, kept for callers that need no more.
	AllowPrivate bool

	// Allow opens the networks and host names a route lists. Link-local,
	// cloud metadata, unspecified, multicast and broadcast addresses are
	// refused whatever it and AllowPrivate say.
	Allow Allow

	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver Resolver
}

// policy is g.Allow with AllowPrivate folded in.
func (g Guard) policy() Allow {
	p := g.Allow
	p.Private = p.Private || g.AllowPrivate
	return p
}

// Check returns a *RefusedError when the guard would refuse a, reached as
// a literal address (no allowed host name applies).
func (g Guard) Check(a netip.Addr) error { return g.policy().Permits("", a) }

// DialContext resolves address, refuses it if any address it resolves to is
// refused (a name that mixes public and internal answers is not trusted for
// either), and otherwise connects to the addresses in turn. Its signature is
// http.Transport.DialContext's.
func (g Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var ipNet string
	switch network {
	case "tcp":
		ipNet = "ip"
	case "tcp4":
		ipNet = "ip4"
	case "tcp6":
		ipNet = "ip6"
	default:
		return nil, fmt.Errorf("egress: network %q is not allowed", network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	addrs, err := g.resolve(ctx, ipNet, host)
	if err != nil {
		return nil, err
	}
	policy := g.policy()
	for _, a := range addrs {
		if err := policy.Permits(host, a); err != nil {
			return nil, err
		}
	}
	// The hook checks again with the name dialled (an allowed name's
	// addresses pass there too); the dialer connects only to the addresses
	// just checked, never resolving again.
	d := net.Dialer{Control: func(network, address string, _ syscall.RawConn) error {
		return policy.control(host, address)
	}}
	var firstErr error
	for i, a := range addrs {
		dctx, cancel := partialDeadline(ctx, len(addrs)-i)
		conn, err := d.DialContext(dctx, network, net.JoinHostPort(a.String(), port))
		cancel()
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// resolve returns host's addresses; a literal address is its own answer.
func (g Guard) resolve(ctx context.Context, ipNet, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		return nil, fmt.Errorf("egress: resolve: %w", err) // keeps *net.DNSError for callers
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

// control is the last check, on the address the socket is about to connect
// to, whatever path led there; with no host name, only the policy's
// networks and allow_private can open a non-public address.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	return g.policy().control("", address)
}

// control checks the address a socket is about to connect to, reached by
// dialling host.
func (a Allow) control(host, address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: connect to %q: %w", address, errors.Join(ErrRefused, err))
	}
	return a.Permits(host, ap.Addr())
}

// partialDeadline gives one of n remaining addresses its share of ctx's
// time, so a first address that hangs leaves time for the others.
func partialDeadline(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return context.WithCancel(ctx)
	}
	share := time.Until(deadline) / time.Duration(n)
	if share < minDialTimeout {
		share = min(minDialTimeout, time.Until(deadline))
	}
	return context.WithTimeout(ctx, share)
}
