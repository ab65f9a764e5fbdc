//go:build crash

package crashtest

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestSIGKILLUnderLoad sends messages from 8 concurrent clients while the
// gateway is SIGKILLed and restarted at random points, then once more while
// it is delivering. Every message that got a 250 must reach the webhook at
// least once, every copy under its own id's webhook-id, and no message that
// got a 4xx may be delivered at all.
func TestSIGKILLUnderLoad(t *testing.T) {
	t.Parallel()
	n := 400
	if v, err := strconv.Atoi(os.Getenv("POSTERN_CRASH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	const clients = 8
	rcv := newReceiver(t)
	gw := newGateway(t, filepath.Join(t.TempDir(), "data"), rcv.URL(), "")
	l := newLedger()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	t.Logf("%d messages from %d clients", n, clients)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var sending atomic.Bool
	sending.Store(true)
	killerDone := make(chan int)
	go func() {
		kills := 0
		defer func() { killerDone <- kills }()
		for sending.Load() && kills < 12 && ctx.Err() == nil {
			// A random point: after some more acknowledgements or some time,
			// whichever comes first, so kills land mid-DATA, mid-store,
			// mid-enqueue and mid-delivery alike.
			next := l.ackedCount() + 5 + rng.IntN(40)
			until := time.Now().Add(time.Duration(50+rng.IntN(600)) * time.Millisecond)
			for sending.Load() && l.ackedCount() < next && time.Now().Before(until) {
				time.Sleep(2 * time.Millisecond)
			}
			if !sending.Load() {
				return
			}
			gw.kill()
			kills++
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			gw.start()
		}
	}()
	sizes := []int{1 << 10, 10 << 10, 100 << 10}
	send(ctx, t, sendPlan{addr: gw.addr, prefix: "kill", clients: clients, perClient: n / clients,
		size: func(c, m int) int { return sizes[(c+m)%len(sizes)] }}, l)
	sending.Store(false)
	kills := <-killerDone

	// Once more while the stages work through the backlog.
	time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
	gw.kill()
	kills++
	gw.start()

	if got := l.ackedCount(); got != n/clients*clients {
		t.Fatalf("only %d of %d messages were ever accepted", got, n/clients*clients)
	}
	dups := waitDelivered(t, l, rcv, 90*time.Second)
	extra := 0
	for _, ds := range rcv.snapshot() {
		if _, ok := ackedIDs(l)[ds[0].msgID]; !ok {
			extra++
		}
	}
	t.Logf("%d kills; %d accepted; %d attempts cut off by a kill; 4xx replies %v; %d duplicate deliveries (same webhook-id); "+
		"%d copies under another id (the client never saw their 250 and sent again)",
		kills, l.ackedCount(), l.uncertain, l.codes, dups, extra)
	if kills < 3 {
		t.Errorf("only %d kills happened: the load ended too soon to test anything", kills)
	}
}

// ackedIDs is the set of ids the clients got a 250 for.
func ackedIDs(l *ledger) map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(l.acked))
	for _, id := range l.acked {
		out[id] = true
	}
	return out
}
