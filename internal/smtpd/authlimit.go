package smtpd

import (
	"context"
	"hash/maphash"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// authAddrFactor is how many more failures an address may have than one
// (address, username) pair: several devices behind one NAT address, each
// with its own account, can each mistype a few times before the address as
// a whole is refused AUTH, while a guesser who rotates usernames is stopped
// at authAddrFactor times the per-user limit.
const authAddrFactor = 4

// authFailureKeys bounds the failure maps: past this many entries, stale
// ones are swept whenever a map has doubled since its last sweep (an
// amortised cost, never a scan per failure).
const authFailureKeys = 10000

// AuthFailures is the gateway's guard against password guessing. One is
// shared by every listener, so a client cannot spread its guesses.
//
// It counts failed AUTH within a window per (address, username) and per
// address, where an address is an IPv4 address or the /64 an IPv6 address
// belongs to (authAddrKey). A pair that reaches the per-user limit is
// refused AUTH for that username; an address that reaches authAddrFactor
// times that limit is refused every AUTH. Neither stops the address from
// connecting and sending as a network identity: a lock-out locks out
// passwords, not the devices behind a shared address.
//
// It also bounds how many password checks (bcrypt) run at once, so an AUTH
// flood cannot take every CPU from the sessions that move mail.
type AuthFailures struct {
	window  time.Duration
	maxUser int // failures per (address, username); <= 0: no lock-out
	maxAddr int // failures per address
	now     func() time.Time
	seed    maphash.Seed
	checks  *semaphore.Weighted

	// mu guards byUser and byAddr. A window older than window counts as
	// absent (it is replaced on the next failure and swept in time).
	mu     sync.Mutex
	byUser failCounts[userKey]
	byAddr failCounts[netip.Prefix]
}

// userKey is one (address, username) pair. The username is kept as a hash
// so that a client sending long usernames cannot grow the map's memory.
type userKey struct {
	addr netip.Prefix
	user uint64
}

// NewAuthFailures locks an (address, username) pair out of AUTH after max
// failures within window, and an address after authAddrFactor*max. At most
// runtime.NumCPU() password checks run at once.
func NewAuthFailures(max int, window time.Duration) *AuthFailures {
	return &AuthFailures{
		window:  window,
		maxUser: max,
		maxAddr: authAddrFactor * max,
		now:     time.Now,
		seed:    maphash.MakeSeed(),
		checks:  semaphore.NewWeighted(int64(runtime.NumCPU())),
		byUser:  failCounts[userKey]{m: map[userKey]*failWindow{}},
		byAddr:  failCounts[netip.Prefix]{m: map[netip.Prefix]*failWindow{}},
	}
}

// authAddrKey is the unit an address's failures are counted in: an IPv4
// address (/32), or the /64 of an IPv6 address, since one host or
// subscriber is normally given a whole /64 (RFC 6177) and could otherwise
// guess from 2^64 addresses.
func authAddrKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

func (a *AuthFailures) userKey(ip netip.Addr, user string) userKey {
	return userKey{addr: authAddrKey(ip), user: maphash.String(a.seed, user)}
}

// addrLocked reports whether every AUTH from ip is refused.
func (a *AuthFailures) addrLocked(ip netip.Addr) bool {
	if a.maxUser <= 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byAddr.count(authAddrKey(ip), a.now(), a.window) >= a.maxAddr
}

// locked reports whether AUTH as user from ip is refused.
func (a *AuthFailures) locked(ip netip.Addr, user string) bool {
	if a.maxUser <= 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	return a.byAddr.count(authAddrKey(ip), now, a.window) >= a.maxAddr ||
		a.byUser.count(a.userKey(ip, user), now, a.window) >= a.maxUser
}

// add records a failure of user from ip. It returns the pair's failures in
// the window and whether the pair or the address is now locked out.
func (a *AuthFailures) add(ip netip.Addr, user string) (n int, locked bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	n = a.byUser.add(a.userKey(ip, user), now, a.window)
	addrN := a.byAddr.add(authAddrKey(ip), now, a.window)
	return n, a.maxUser > 0 && (n >= a.maxUser || addrN >= a.maxAddr)
}

// acquireCheck waits for a free password-check slot until ctx ends; the
// caller must call releaseCheck after a nil return.
func (a *AuthFailures) acquireCheck(ctx context.Context) error { return a.checks.Acquire(ctx, 1) }

func (a *AuthFailures) releaseCheck() { a.checks.Release(1) }

// failCounts is a map of failure windows that stays bounded by the number
// of recently failing keys. Its owner serialises access.
type failCounts[K comparable] struct {
	m     map[K]*failWindow
	swept int // len(m) after the last sweep
}

type failWindow struct {
	start time.Time
	n     int
}

func (f *failCounts[K]) count(k K, now time.Time, window time.Duration) int {
	w := f.m[k]
	if w == nil || now.Sub(w.start) > window {
		return 0
	}
	return w.n
}

func (f *failCounts[K]) add(k K, now time.Time, window time.Duration) int {
	w := f.m[k]
	if w == nil || now.Sub(w.start) > window {
		w = &failWindow{start: now}
		f.m[k] = w
	}
	w.n++
	if len(f.m) > max(authFailureKeys, 2*f.swept) {
		for k, v := range f.m {
			if now.Sub(v.start) > window {
				delete(f.m, k)
			}
		}
		f.swept = len(f.m)
	}
	return w.n
}
