package notify_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/postern/postern/internal/dsn/notify"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/fsqueue"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/worker"
)

// A notice that cannot be built (here: the job carries no date at all)
// fails its job permanently, so the worker moves it to the dead-letter queue
// instead of dropping it.
func TestUnbuildableNoticeIsDeadLettered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	f.job.Created = time.Time{}
	f.job.Envelope.ReceivedAt = time.Time{}
	h := f.handler(t)
	if err := f.handle(t, h, 1); !postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, want a permanent error", err)
	}
	if txs := f.srv.Txs(); len(txs) != 0 {
		t.Fatalf("%d notices sent", len(txs))
	}

	db, err := fsqueue.Open(filepath.Join(t.TempDir(), "q.db"), fsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dlq, err := db.Queue("dsn-dlq", fsqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := db.Queue("dsn", fsqueue.Config{MaxReceives: 20, DeadLetter: "dsn-dlq"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(f.job)
	if _, err := q.Send(t.Context(), body, 0); err != nil {
		t.Fatal(err)
	}
	outcome := make(chan string, 1)
	w := &worker.Worker{Stage: "dsn", Queue: q, Handler: h, DeadLetter: dlq, Wait: 10 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(tlog{t}, nil)),
		Observe: func(_, o string, _ time.Duration) {
			select {
			case outcome <- o:
			default:
			}
		}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	got := <-outcome
	cancel()
	<-done
	if got != "dead_letter" {
		t.Fatalf("outcome %q, want dead_letter", got)
	}
	msgs, err := dlq.Receive(t.Context(), 10, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || string(msgs[0].Body) != string(body) {
		t.Fatalf("dead-letter queue holds %d jobs, want the notice's job", len(msgs))
	}
	if st, _ := q.Stats(t.Context()); st.Visible+st.InFlight+st.Delayed != 0 {
		t.Errorf("the job is still on the dsn queue: %+v", st)
	}
}

// With several notices, one that cannot be built does not stop the others;
// the job then goes to the dead-letter queue, and a retry of it does not
// send the others again.
func TestUnbuildableNoticeBesideGoodOnes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.Options{})
	f.cfg.Policy = notify.Policy{Owner: func(string) string { return "ops@bad host.example" }}
	h := f.handler(t)
	err := f.handle(t, h, 1)
	if !postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, want a permanent error", err)
	}
	if txs := f.srv.Txs(); len(txs) != 1 || txs[0].Rcpts[0] != "scanner@lan.example" {
		t.Fatalf("sent %+v; want the sender's notice only", txs)
	}
	if err := f.handle(t, h, 2); !postern.IsPermanent(err) {
		t.Fatalf("retry: Handle = %v, want a permanent error", err)
	}
	if txs := f.srv.Txs(); len(txs) != 1 {
		t.Fatalf("the retry sent the sender's notice again: %d notices", len(txs))
	}
}
