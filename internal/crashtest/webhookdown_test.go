//go:build crash

package crashtest

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestWebhookDownThenBack takes the application away while mail arrives:
// first its connections are dropped, then it answers 503. Nothing may be
// delivered while it is down, and once it is back every accepted message
// must arrive, exactly once (no process dies here, so nothing excuses a
// duplicate).
func TestWebhookDownThenBack(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t)
	rcv.mode.Store(modeDrop)
	gw := newGateway(t, filepath.Join(t.TempDir(), "data"), rcv.URL(), "")
	l := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	send(ctx, t, sendPlan{addr: gw.addr, prefix: "down", clients: 8, perClient: 10}, l)
	refused := func() int {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.refused
	}
	// Every message must be tried while the receiver is down (dropping
	// connections, then answering 503).
	deadline := time.Now().Add(30 * time.Second)
	for refused() < l.ackedCount()/2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	rcv.mode.Store(mode503)
	for refused() < l.ackedCount() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := rcv.total(); n != 0 {
		t.Fatalf("%d deliveries recorded while the receiver was down", n)
	}
	turnedAway := refused()
	if turnedAway < l.ackedCount() {
		t.Errorf("only %d attempts reached the receiver while it was down, for %d messages", turnedAway, l.ackedCount())
	}

	back := time.Now()
	rcv.mode.Store(modeUp)
	// Retries back off exponentially (5s, 10s, 20s bounds, full jitter)
	// after the failures above, so the last message may take a while.
	if dups := waitDelivered(t, l, rcv, 75*time.Second); dups != 0 {
		t.Errorf("%d duplicate deliveries without any crash", dups)
	}
	if !gw.alive() {
		t.Error("the gateway died")
	}
	t.Logf("%d messages; %d attempts turned away while down; all delivered %s after the receiver came back",
		l.ackedCount(), turnedAway, lastDelivery(rcv).Sub(back).Round(100*time.Millisecond))
}

// lastDelivery is when the receiver accepted its latest request.
func lastDelivery(r *receiver) time.Time {
	var last time.Time
	for _, ds := range r.snapshot() {
		for _, d := range ds {
			if d.at.After(last) {
				last = d.at
			}
		}
	}
	return last
}
