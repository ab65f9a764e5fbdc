//go:build crash

package crashtest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/loadgen"
	"github.com/postern/postern/internal/postern"
)

// ledger is what the clients were told: which message got which 250, and
// which message ids were refused with a 4xx.
type ledger struct {
	mu        sync.Mutex
	acked     map[string]string // tag -> id from the 250 reply
	refused   map[string]string // id from a 4xx reply -> the reply
	codes     map[int]int       // every non-250 final reply, by code
	uncertain int               // attempts cut off before a reply (gateway killed)
}

func newLedger() *ledger {
	return &ledger{acked: map[string]string{}, refused: map[string]string{}, codes: map[int]int{}}
}

func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// sendPlan is a batch of messages: clients sessions in parallel, each
// sending perClient messages of size bytes, tags prefix-cNN-mNNNN.
type sendPlan struct {
	addr      string
	prefix    string
	clients   int
	perClient int
	size      func(client, seq int) int
	// giveUp, if set, stops retrying a message after a 4xx (for a test
	// that wants to see refusals rather than eventual success).
	giveUp bool
}

// send runs the plan. Each message is retried, as an MTA would, until it is
// accepted (or, with giveUp, refused once): a 4xx after a short pause on the
// same session, a dropped connection on a new one. A 5xx fails the test.
func send(ctx context.Context, t *testing.T, p sendPlan, l *ledger) {
	t.Helper()
	var wg sync.WaitGroup
	for c := range p.clients {
		wg.Go(func() { sendClient(ctx, t, p, c, l) })
	}
	wg.Wait()
}

func sendClient(ctx context.Context, t *testing.T, p sendPlan, c int, l *ledger) {
	var s *loadgen.Session
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	tpls := map[int]*loadgen.Template{}
	for m := 0; m < p.perClient && ctx.Err() == nil; {
		size := 10 << 10
		if p.size != nil {
			size = p.size(c, m)
		}
		tpl := tpls[size]
		if tpl == nil {
			tpl = loadgen.NewTemplate(size)
			tpls[size] = tpl
		}
		tag := fmt.Sprintf("%s-c%02d-m%04d", p.prefix, c, m)
		if s == nil {
			var err error
			s, err = loadgen.Dial(ctx, p.addr, "client.crash.test", 30*time.Second)
			if err != nil {
				pauseCtx(ctx, 50*time.Millisecond) // the gateway is down: wait for its restart
				continue
			}
		}
		rep, err := s.Send(ctx, "device@lan.test", []string{"ops@app.test"},
			tpl.Header("device@lan.test", "ops@app.test", tag, time.Now()), tpl.Body)
		switch {
		case err != nil:
			l.mu.Lock()
			l.uncertain++
			l.mu.Unlock()
			s.Abort()
			s = nil
		case rep.OK():
			id := rep.LastWord()
			if _, err := postern.ParseMsgID(id); err != nil {
				t.Errorf("%s: 250 without a message id: %q", tag, rep)
			}
			l.mu.Lock()
			l.acked[tag] = id
			l.mu.Unlock()
			m++
		case rep.Temporary():
			l.mu.Lock()
			l.codes[rep.Code]++
			if _, err := postern.ParseMsgID(rep.LastWord()); err == nil {
				l.refused[rep.LastWord()] = rep.String()
			}
			l.mu.Unlock()
			if p.giveUp {
				m++
			}
			pauseCtx(ctx, 20*time.Millisecond)
		default:
			t.Errorf("%s: permanent refusal %s", tag, rep)
			l.mu.Lock()
			l.codes[rep.Code]++
			l.mu.Unlock()
			m++
		}
	}
}

func pauseCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// waitDelivered waits until every acknowledged message has reached the
// receiver, then checks what the receiver got against what the clients were
// told. It returns the number of duplicate deliveries.
func waitDelivered(t *testing.T, l *ledger, r *receiver, timeout time.Duration) (dups int) {
	t.Helper()
	l.mu.Lock()
	acked := make(map[string]string, len(l.acked))
	for k, v := range l.acked {
		acked[k] = v
	}
	refused := make(map[string]string, len(l.refused))
	for k, v := range l.refused {
		refused[k] = v
	}
	l.mu.Unlock()

	deadline := time.Now().Add(timeout)
	var got map[string][]delivery
	var missing []string
	for {
		got = r.snapshot()
		missing = missing[:0]
		for tag, id := range acked {
			if len(got[id+".app"]) == 0 {
				missing = append(missing, tag+"="+id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("%d of %d acknowledged messages never reached the webhook within %s: %s",
			len(missing), len(acked), timeout, strings.Join(missing[:min(len(missing), 10)], ", "))
	}
	byTag := map[string]string{}
	for tag, id := range acked {
		byTag[id] = tag
	}
	for whID, ds := range got {
		for _, d := range ds {
			// Every delivery under one webhook-id is the same message.
			if d.msgID != ds[0].msgID || d.tag != ds[0].tag {
				t.Errorf("webhook-id %s carried different messages: %+v and %+v", whID, ds[0], d)
			}
		}
		dups += len(ds) - 1
		if why, ok := refused[ds[0].msgID]; ok {
			t.Errorf("message %s was refused (%s) yet delivered", ds[0].msgID, why)
		}
		if tag, ok := byTag[ds[0].msgID]; ok && tag != ds[0].tag {
			t.Errorf("message %s was acknowledged for %s but delivered as %s", ds[0].msgID, tag, ds[0].tag)
		}
	}
	r.mu.Lock()
	for _, p := range r.problems {
		t.Error("receiver:", p)
	}
	r.mu.Unlock()
	return dups
}
