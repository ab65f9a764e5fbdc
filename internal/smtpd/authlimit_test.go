package smtpd

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/semaphore"
)

func TestAuthAddrKey(t *testing.T) {
	t.Parallel()
	key := func(s string) netip.Prefix { return authAddrKey(netip.MustParseAddr(s)) }
	same := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"}, // one /64
		{"192.0.2.7", "::ffff:192.0.2.7"},                       // IPv4-mapped is IPv4
		{"fe80::1%eth0", "fe80::2"},                             // zones do not matter
	}
	for _, p := range same {
		if key(p[0]) != key(p[1]) {
			t.Errorf("%s and %s counted apart (%s, %s)", p[0], p[1], key(p[0]), key(p[1]))
		}
	}
	apart := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:3::1"}, // neighbouring /64s
		{"192.0.2.7", "192.0.2.8"},             // IPv4 per /32
	}
	for _, p := range apart {
		if key(p[0]) == key(p[1]) {
			t.Errorf("%s and %s counted together (%s)", p[0], p[1], key(p[0]))
		}
	}
	if got := key("2001:db8:1:2:3:4:5:6").String(); got != "2001:db8:1:2::/64" {
		t.Errorf("key = %s", got)
	}
}

func TestAuthFailuresPerUserAndPerAddress(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	a := NewAuthFailures(2, time.Minute)
	a.now = func() time.Time { return now }
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }

	// Two failures lock the pair, from any address of the /64.
	if _, locked := a.add(ip("2001:db8::1"), "erp"); locked {
		t.Fatal("locked after one failure")
	}
	if n, locked := a.add(ip("2001:db8::2"), "erp"); n != 2 || !locked {
		t.Fatalf("second failure in the /64: n=%d locked=%v", n, locked)
	}
	if !a.locked(ip("2001:db8::ffff"), "erp") || a.locked(ip("2001:db8::1"), "ops") || a.locked(ip("2001:db8:0:1::1"), "erp") {
		t.Fatal("the lock must cover erp in that /64 only")
	}
	// The address is locked after 4*2 failures whatever the usernames.
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		if a.addrLocked(ip("2001:db8::9")) {
			t.Fatalf("address locked before its limit (at user %s)", u)
		}
		a.add(ip("2001:db8::9"), u)
	}
	if _, locked := a.add(ip("2001:db8::9"), "f"); !locked || !a.addrLocked(ip("2001:db8::1")) || !a.locked(ip("2001:db8::1"), "ops") {
		t.Fatal("address not locked at 8 failures")
	}
	if a.addrLocked(ip("192.0.2.1")) {
		t.Fatal("another address is locked")
	}
	// The window passes.
	now = now.Add(time.Minute + time.Second)
	if a.addrLocked(ip("2001:db8::1")) || a.locked(ip("2001:db8::1"), "erp") {
		t.Fatal("still locked after the window")
	}
}

func TestAuthFailuresStayBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	a := NewAuthFailures(5, time.Minute)
	a.now = func() time.Time { return now }
	for round := range 5 {
		for i := range 3 * authFailureKeys {
			a.add(netip.AddrFrom4([4]byte{10, byte(round), byte(i >> 8), byte(i)}), "u")
		}
		now = now.Add(2 * time.Minute)
	}
	// Each round's keys are stale by the next: at most two rounds' worth
	// (one being added, one not yet swept) are ever held.
	if n, m := len(a.byAddr.m), len(a.byUser.m); n > 6*authFailureKeys || m > 6*authFailureKeys {
		t.Fatalf("maps hold %d and %d entries", n, m)
	}
}

// An unknown user must cost as much time as a wrong password: the dummy
// hash follows the highest cost among the identities.
func TestUnknownUserCostsAsMuchAsWrongPassword(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("right"), 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := []Identity{
		{Name: "cheap", Username: "cheap", PasswordHash: hash(t, "x")}, // cost 4
		{Name: "erp", Username: "erp", PasswordHash: h},
	}
	srv := New(testConfig(), ids, routerFunc(func(string, string, string) bool { return true }), &fakeIngest{}, slog.New(slog.DiscardHandler))
	if c, err := bcrypt.Cost(srv.dummyHash); err != nil || c != 10 {
		t.Fatalf("dummy hash cost %d (%v), want 10", c, err)
	}
	// The CPU time of the checking thread is measured, not wall time, so
	// that tests running alongside do not count (wall time where the
	// system cannot say).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	check := func(user string) time.Duration {
		start, cpu := threadCPU()
		wall := time.Now()
		ok, err := srv.checkPassword(context.Background(), srv.identityByUser(user), "wrong")
		if ok || err != nil {
			t.Fatalf("check %s: %v %v", user, ok, err)
		}
		if end, _ := threadCPU(); cpu {
			return end - start
		}
		return time.Since(wall)
	}
	// Pairs measured back to back, in alternating order; the median ratio
	// is what counts.
	var ratios []float64
	for i := range 5 {
		var known, unknown time.Duration
		if i%2 == 0 {
			known, unknown = check("erp"), check("nosuchuser")
		} else {
			unknown, known = check("nosuchuser"), check("erp")
		}
		ratios = append(ratios, float64(unknown)/float64(known))
	}
	slices.Sort(ratios)
	t.Logf("unknown user / wrong password time ratios: %.2f", ratios)
	if m := ratios[len(ratios)/2]; m < 0.75 || m > 1.25 {
		t.Fatalf("unknown user / wrong password time: median %.2f (all %.2f), want within 25%%", m, ratios)
	}
}

// At most a few password checks run at once; one that waits longer than the
// command timeout is answered 454 4.7.0 and the session goes on.
func TestPasswordChecksBusyIsTemporary(t *testing.T) {
	t.Parallel()
	af := NewAuthFailures(3, time.Minute)
	af.checks = semaphore.NewWeighted(1)
	if !af.checks.TryAcquire(1) {
		t.Fatal("cannot take the check slot")
	}
	addr, _ := startWith(t, authIdentities(t), &fakeIngest{}, func(c *Config) {
		c.AuthFailures = af
		c.CommandTimeout = time.Second
	})
	d := tlsDialog(t, addr)
	start := time.Now()
	d.must("AUTH PLAIN "+b64("\x00erp\x00s3cret"), "454 4.7.0")
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("454 after %v, before the command timeout", waited)
	}
	af.checks.Release(1)
	d.must("AUTH PLAIN "+b64("\x00erp\x00s3cret"), "235")
}
