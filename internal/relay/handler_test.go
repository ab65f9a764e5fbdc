package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/apirelay"
	"github.com/postern/postern/internal/relay/graphrelay"
	"github.com/postern/postern/internal/relay/graphrelay/graphtest"
	"github.com/postern/postern/internal/relay/relaytest"
	"github.com/postern/postern/internal/relay/smtprelay"
)

const (
	testID  postern.MsgID = "01JNKQ3V8Z7Y6X5W4V3T2S1R0Q"
	testRaw               = "From: scanner@lan.example\r\nTo: a@example.com\r\nSubject: scan\r\n\r\nbody\r\n"
)

var testCreated = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

// fakeTransport answers with replies per address and records each call.
type fakeTransport struct {
	mu      sync.Mutex
	replies map[string]relay.Reply // missing: accepted
	err     error
	calls   [][]string
	bodies  []string
}

func (f *fakeTransport) Send(ctx context.Context, m *relay.Message) (*relay.Result, error) {
	b, err := io.ReadAll(m.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var to []string
	for _, r := range m.To {
		to = append(to, r.Addr)
	}
	f.calls = append(f.calls, to)
	f.bodies = append(f.bodies, string(b))
	if f.err != nil {
		return nil, f.err
	}
	res := &relay.Result{Remote: "smtp.example.com"}
	for _, r := range m.To {
		rep, ok := f.replies[r.Addr]
		if !ok {
			rep = relay.Reply{Code: 250, Status: "2.0.0", Text: "2.0.0 Ok"}
		}
		res.Rcpts = append(res.Rcpts, relay.RcptResult{Addr: r.Addr, Reply: rep})
	}
	return res, nil
}

func (f *fakeTransport) set(addr string, r relay.Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.replies == nil {
		f.replies = map[string]relay.Reply{}
	}
	f.replies[addr] = r
}

func (f *fakeTransport) accept(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.replies, addr)
}

func (f *fakeTransport) callList() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

var (
	reply550 = relay.Reply{Code: 550, Status: "5.1.1", Text: "5.1.1 no such user"}
	reply450 = relay.Reply{Code: 450, Status: "4.2.1", Text: "4.2.1 busy"}
)

type fixture struct {
	store *relaytest.Store
	dsnq  *relaytest.Queue
	tr    relay.Transport
	route relay.Route
	now   time.Time
	job   postern.RelayJob
}

func newFixture(t *testing.T, tr relay.Transport) *fixture {
	t.Helper()
	f := &fixture{store: relaytest.NewStore(), dsnq: &relaytest.Queue{}, tr: tr, now: testCreated.Add(time.Minute)}
	f.route = relay.Route{Transport: tr, MaxAge: 4 * time.Hour}
	f.store.Put(t.Context(), testID.RawKey(), strings.NewReader(testRaw), nil)
	f.job = postern.RelayJob{
		V: postern.JobVersion, ID: testID, Route: "smarthost", Created: testCreated,
		Recipients: []string{"a@example.com", "gone@example.com", "busy@example.com"},
		Envelope: postern.Envelope{
			V: postern.EnvelopeVersion, ID: testID, Sender: "scanner@lan.example",
			Recipients: []postern.Recipient{
				{Addr: "a@example.com"},
				{Addr: "gone@example.com", Notify: []string{"FAILURE"}, ORCPT: "rfc822;Gone@Example.com"},
				{Addr: "busy@example.com"},
			},
			Size: int64(len(testRaw)), Ret: "HDRS", EnvID: "env-1",
		},
	}
	return f
}

func (f *fixture) handler(t *testing.T) *relay.Handler {
	log := slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return relay.New(f.store, func(name string) (relay.Route, bool) {
		if name != "smarthost" {
			return relay.Route{}, false
		}
		return f.route, true
	}, f.dsnq, log, relay.WithClock(func() time.Time { return f.now }), relay.WithBackoff(time.Minute, 10*time.Minute))
}

func (f *fixture) body(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(f.job)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) handle(t *testing.T, h *relay.Handler, attempt int) error {
	t.Helper()
	return h.Handle(t.Context(), postern.Job{Body: f.body(t), Attempt: attempt})
}

func (f *fixture) dsnJobs(t *testing.T) []dsn.Job {
	t.Helper()
	var out []dsn.Job
	for _, b := range f.dsnq.Bodies() {
		var j dsn.Job
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatalf("dsn job: %v", err)
		}
		out = append(out, j)
	}
	return out
}

type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func mustRetry(t *testing.T, err error, lo, hi time.Duration) {
	t.Helper()
	if err == nil || postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, want a temporary error", err)
	}
	d, ok := postern.RetryDelay(err)
	if !ok || d < lo || d > hi {
		t.Fatalf("retry delay %v (%v), want within [%v, %v]", d, ok, lo, hi)
	}
}

func TestRelayAllAccepted(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	f := newFixture(t, tr)
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	calls := tr.callList()
	if len(calls) != 1 || len(calls[0]) != 3 || tr.bodies[0] != testRaw {
		t.Errorf("calls %v", calls)
	}
	if n := len(f.dsnq.Bodies()); n != 0 {
		t.Errorf("%d dsn jobs, want 0", n)
	}
	if _, ok := f.store.Bytes(relay.StateKey(testID, "smarthost")); ok {
		t.Error("state written for a job that finished")
	}
}

func TestRelayMixedRepliesRetryOnlyDeferred(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	tr.set("gone@example.com", reply550)
	tr.set("busy@example.com", reply450)
	f := newFixture(t, tr)
	h := f.handler(t)

	mustRetry(t, f.handle(t, h, 1), 30*time.Second, time.Minute)
	jobs := f.dsnJobs(t)
	if len(jobs) != 1 {
		t.Fatalf("%d dsn jobs, want 1", len(jobs))
	}
	j := jobs[0]
	if j.Action != "" || j.ID != testID || j.Envelope.Sender != "scanner@lan.example" || j.Envelope.EnvID != "env-1" {
		t.Errorf("dsn job %+v", j)
	}
	want := postern.Failure{Recipient: "gone@example.com", Route: "smarthost", Status: "5.1.1",
		Diagnostic: "smtp; 550 5.1.1 no such user", RemoteMTA: "smtp.example.com", LastAt: f.now}
	if len(j.Failed) != 1 || j.Failed[0] != want {
		t.Errorf("failed %+v\nwant %+v", j.Failed, want)
	}

	// The retry sends only to the deferred recipient.
	f.now = f.now.Add(5 * time.Minute)
	tr.accept("busy@example.com")
	if err := f.handle(t, h, 2); err != nil {
		t.Fatalf("second Handle: %v", err)
	}
	calls := tr.callList()
	if len(calls) != 2 || !slices.Equal(calls[1], []string{"busy@example.com"}) {
		t.Errorf("calls %v, want the second to busy@ only", calls)
	}
	if n := len(f.dsnq.Bodies()); n != 1 {
		t.Errorf("%d dsn jobs after the retry, want still 1", n)
	}
	// A redelivery of the finished job (a lost ack) sends nothing more
	// than the last attempt did.
	if err := f.handle(t, h, 3); err != nil {
		t.Fatalf("third Handle: %v", err)
	}
	if calls := tr.callList(); len(calls) != 3 || !slices.Equal(calls[2], []string{"busy@example.com"}) {
		t.Errorf("calls %v", calls)
	}
}

func TestRelayExpiryReportsDeferred(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	tr.set("busy@example.com", reply450)
	f := newFixture(t, tr)
	f.job.Recipients = []string{"a@example.com", "busy@example.com"}
	h := f.handler(t)
	mustRetry(t, f.handle(t, h, 1), 30*time.Second, time.Minute)

	// Close to expiry, the retry is cut to the time left.
	f.now = testCreated.Add(4*time.Hour - 10*time.Second)
	mustRetry(t, f.handle(t, h, 7), time.Second, 10*time.Second)

	f.now = testCreated.Add(4*time.Hour + time.Second)
	if err := f.handle(t, h, 8); err != nil {
		t.Fatalf("Handle after max age: %v", err)
	}
	jobs := f.dsnJobs(t)
	if len(jobs) != 1 || len(jobs[0].Failed) != 1 {
		t.Fatalf("dsn jobs %+v", jobs)
	}
	fl := jobs[0].Failed[0]
	if fl.Recipient != "busy@example.com" || fl.Status != "4.2.1" || fl.Diagnostic != "smtp; 450 4.2.1 busy" || jobs[0].Action != "" {
		t.Errorf("failure %+v", fl)
	}
	for i, c := range tr.callList()[1:] {
		if !slices.Equal(c, []string{"busy@example.com"}) {
			t.Errorf("call %d to %v, want busy@ only", i+1, c)
		}
	}
}

func TestRelayDelayNoticeOnce(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	tr.set("busy@example.com", relay.LocalReply("4.4.1", "connection refused"))
	f := newFixture(t, tr)
	f.job.Recipients = []string{"busy@example.com"}
	f.route.DelayNotice = time.Hour
	h := f.handler(t)

	mustRetry(t, f.handle(t, h, 1), 30*time.Second, time.Minute)
	if n := len(f.dsnq.Bodies()); n != 0 {
		t.Fatalf("%d dsn jobs before the delay threshold", n)
	}
	f.now = testCreated.Add(time.Hour + time.Minute)
	mustRetry(t, f.handle(t, h, 2), time.Minute, 2*time.Minute)
	f.now = f.now.Add(10 * time.Minute)
	mustRetry(t, f.handle(t, h, 3), 2*time.Minute, 4*time.Minute)

	jobs := f.dsnJobs(t)
	if len(jobs) != 1 {
		t.Fatalf("%d dsn jobs, want one delay notice", len(jobs))
	}
	j := jobs[0]
	if j.Action != dsn.ActionDelayed || !j.RetryUntil.Equal(testCreated.Add(4*time.Hour)) {
		t.Errorf("action %q, retry until %v", j.Action, j.RetryUntil)
	}
	want := postern.Failure{Recipient: "busy@example.com", Route: "smarthost", Status: "4.4.1",
		Diagnostic: "X-Postern; connection refused", LastAt: testCreated.Add(time.Hour + time.Minute)}
	if len(j.Failed) != 1 || j.Failed[0] != want {
		t.Errorf("delayed %+v\nwant %+v", j.Failed, want)
	}
}

func TestRelayDSNQueueDownKeepsProgress(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	tr.set("gone@example.com", reply550)
	f := newFixture(t, tr)
	f.job.Recipients = []string{"a@example.com", "gone@example.com"}
	f.dsnq.SetErr(errors.New("queue down"))
	h := f.handler(t)
	err := f.handle(t, h, 1)
	if err == nil || postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, want temporary", err)
	}
	f.dsnq.SetErr(nil)
	if err := f.handle(t, h, 2); err != nil {
		t.Fatalf("retry: %v", err)
	}
	calls := tr.callList()
	if len(calls) != 2 || !slices.Equal(calls[1], []string{"gone@example.com"}) {
		t.Errorf("calls %v, want the retry to skip the accepted recipient", calls)
	}
	if jobs := f.dsnJobs(t); len(jobs) != 1 || jobs[0].Failed[0].Recipient != "gone@example.com" {
		t.Errorf("dsn jobs %+v", jobs)
	}
}

func TestRelayReplayStartsAfresh(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	tr.set("busy@example.com", reply450)
	f := newFixture(t, tr)
	h := f.handler(t)
	tr.set("gone@example.com", reply550)
	mustRetry(t, f.handle(t, h, 1), 0, time.Hour)
	// A new job for the same message and route (a replay from the archive)
	// ignores the earlier job's progress.
	f.job.Created = testCreated.Add(time.Hour)
	f.now = f.job.Created
	tr.accept("busy@example.com")
	tr.accept("gone@example.com")
	if err := f.handle(t, h, 1); err != nil {
		t.Fatal(err)
	}
	if calls := tr.callList(); len(calls[1]) != 3 {
		t.Errorf("replay sent to %v, want all three", calls[1])
	}
}

func TestRelayPermanentJobErrors(t *testing.T) {
	t.Parallel()
	for name, mut := range map[string]func(f *fixture){
		"unknown route":   func(f *fixture) { f.job.Route = "gone" },
		"bad id":          func(f *fixture) { f.job.ID = "../../etc" },
		"wrong version":   func(f *fixture) { f.job.V = 9 },
		"no created time": func(f *fixture) { f.job.Created = time.Time{} },
		"raw message gone": func(f *fixture) {
			f.store.Delete(context.Background(), testID.RawKey())
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, &fakeTransport{})
			mut(f)
			if err := f.handle(t, f.handler(t), 1); !postern.IsPermanent(err) {
				t.Fatalf("Handle = %v, want permanent", err)
			}
		})
	}
	f := newFixture(t, &fakeTransport{})
	if err := f.handler(t).Handle(t.Context(), postern.Job{Body: []byte("{"), Attempt: 1}); !postern.IsPermanent(err) {
		t.Errorf("malformed body: %v", err)
	}
}

func TestRelayTransientFaultsRetry(t *testing.T) {
	t.Parallel()
	t.Run("transport error", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, &fakeTransport{err: errors.New("store read failed")})
		err := f.handle(t, f.handler(t), 1)
		if err == nil || postern.IsPermanent(err) {
			t.Fatalf("Handle = %v, want temporary", err)
		}
	})
	t.Run("store down", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, &fakeTransport{})
		f.store.Err = func(op, key string) error { return errors.New("store down") }
		err := f.handle(t, f.handler(t), 1)
		if err == nil || postern.IsPermanent(err) {
			t.Fatalf("Handle = %v, want temporary", err)
		}
	})
}

// The handler and the SMTP transport together, against a real server that
// answers recipients one by one.
func TestRelayThroughSMTP(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{DSN: true, Script: relaytest.Script{Rcpt: map[string]*smtp.SMTPError{
		"gone@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
		"busy@example.com": {Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"},
	}}})
	tr, err := smtprelay.New(smtprelay.Config{Addr: srv.Addr, TLS: smtprelay.TLSNone, LocalName: "gw.example.net", Name: "mx.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, tr)
	h := f.handler(t)
	mustRetry(t, f.handle(t, h, 1), 30*time.Second, time.Minute)

	txs := srv.Txs()
	if len(txs) != 1 || !slices.Equal(txs[0].Rcpts, []string{"a@example.com"}) || string(txs[0].Data) != testRaw {
		t.Fatalf("transactions %+v", txs)
	}
	if tx := txs[0]; tx.From != "scanner@lan.example" || tx.MailOpts.Return != smtp.DSNReturnHeaders || tx.MailOpts.EnvelopeID != "env-1" {
		t.Errorf("MAIL %q RET %q ENVID %q", tx.From, tx.MailOpts.Return, tx.MailOpts.EnvelopeID)
	}
	jobs := f.dsnJobs(t)
	if len(jobs) != 1 || len(jobs[0].Failed) != 1 {
		t.Fatalf("dsn jobs %+v", jobs)
	}
	fl := jobs[0].Failed[0]
	if fl.Recipient != "gone@example.com" || fl.Status != "5.1.1" || fl.Diagnostic != "smtp; 550 5.1.1 no such user" || fl.RemoteMTA != "mx.example.com" {
		t.Errorf("failure %+v", fl)
	}

	srv.SetScript(relaytest.Script{})
	f.now = f.now.Add(time.Minute)
	if err := f.handle(t, h, 2); err != nil {
		t.Fatalf("retry: %v", err)
	}
	txs = srv.Txs()
	if len(txs) != 2 || !slices.Equal(txs[1].Rcpts, []string{"busy@example.com"}) {
		t.Errorf("retry transactions %+v", txs)
	}
}

// smuggleRaw is a stored message with every kind of bad line end, among them
// an "\r.\r" and an "\n.\n" that a next hop could take for the end of DATA,
// each followed by a transaction of its own.
const smuggleRaw = "From: scanner@lan.example\r\nTo: a@example.com\nSubject: scan\r\r\n\r\n" +
	"line one\rline two\nline three\r\n" +
	"\r.\rMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nsmuggled\r\n" +
	"\n.\nQUIT\n" +
	"end\r"

// smuggleSent is smuggleRaw as it must go out: every line end CRLF, so the
// client dot-stuffs the lone dots and they stay part of the message.
const smuggleSent = "From: scanner@lan.example\r\nTo: a@example.com\r\nSubject: scan\r\n\r\n" +
	"line one\r\nline two\r\nline three\r\n" +
	"\r\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nsmuggled\r\n" +
	"\r\n.\r\nQUIT\r\n" +
	"end\r\n"

// A stored message with bare CR and bare LF goes out through the handler and
// the SMTP transport with CRLF line ends only, to a server that refuses any
// other: one transaction, the dots inside it, nothing smuggled.
func TestRelayBareLineEndsGoOutAsCRLF(t *testing.T) {
	t.Parallel()
	srv := relaytest.NewServer(t, relaytest.Options{StrictLineEnds: true})
	tr, err := smtprelay.New(smtprelay.Config{Addr: srv.Addr, TLS: smtprelay.TLSNone, LocalName: "gw.example.net", Name: "mx.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, tr)
	if err := f.store.Put(t.Context(), testID.RawKey(), strings.NewReader(smuggleRaw), nil); err != nil {
		t.Fatal(err)
	}
	f.job.Recipients = []string{"a@example.com"}
	f.job.Envelope.Size = int64(len(smuggleRaw))
	if err := f.handle(t, f.handler(t), 1); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	txs := srv.Txs()
	if len(txs) != 1 || !slices.Equal(txs[0].Rcpts, []string{"a@example.com"}) {
		t.Fatalf("transactions %+v", txs)
	}
	if got := string(txs[0].Data); got != smuggleSent {
		t.Errorf("sent\n%q\nwant\n%q", got, smuggleSent)
	}
	if n := srv.RcptCount(); n != 1 {
		t.Errorf("server saw %d RCPT commands, want 1", n)
	}
	if jobs := f.dsnJobs(t); len(jobs) != 0 {
		t.Errorf("dsn jobs %+v", jobs)
	}
}

// The largest Retry-After among the deferred recipients is the least the
// next try waits, whatever the backoff says, but never past the expiry.
func TestRelayRetryAfterIsFloor(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	throttled := func(d time.Duration) relay.Reply {
		return relay.Reply{Status: "4.4.5", Text: "HTTP 429 (Retry-After " + d.String() + ")", Type: "X-API", RetryAfter: d}
	}
	tr.set("a@example.com", throttled(5*time.Minute))
	tr.set("busy@example.com", throttled(20*time.Minute))
	f := newFixture(t, tr)
	f.job.Recipients = []string{"a@example.com", "busy@example.com"}
	h := f.handler(t)
	// Backoff alone would be within [30s, 1m] on the first attempt.
	mustRetry(t, f.handle(t, h, 1), 20*time.Minute, 20*time.Minute)

	// A hint shorter than the backoff changes nothing.
	tr.set("a@example.com", throttled(time.Second))
	tr.set("busy@example.com", throttled(time.Second))
	mustRetry(t, f.handle(t, h, 4), 4*time.Minute, 8*time.Minute)

	// Ten minutes before the expiry a 20-minute hint is cut to the expiry,
	// so the last try still happens in time.
	tr.set("busy@example.com", throttled(20*time.Minute))
	f.now = testCreated.Add(4*time.Hour - 10*time.Minute)
	mustRetry(t, f.handle(t, h, 5), 10*time.Minute, 10*time.Minute)
	if n := len(f.dsnq.Bodies()); n != 0 {
		t.Errorf("%d dsn jobs before the expiry", n)
	}
}

// countObserver records what the handler reports.
type countObserver struct {
	mu       sync.Mutex
	attempts []relay.Attempt
}

func (o *countObserver) RelayAttempt(a relay.Attempt) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts = append(o.attempts, a)
}

// snapshot sums the counts per route/outcome and counts attempts per route.
func (o *countObserver) snapshot() (map[string]int, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, n := map[string]int{}, map[string]int{}
	for _, a := range o.attempts {
		n[a.Route]++
		for outcome, v := range map[string]int{"delivered": a.Delivered, "deferred": a.Deferred, "failed": a.Failed,
			"expired": a.Expired, "error": a.Error} {
			if v != 0 {
				c[a.Route+"/"+outcome] += v
			}
		}
	}
	return c, n
}

func TestRelayObserverCountsOutcomes(t *testing.T) {
	t.Parallel()
	tr := &fakeTransport{}
	tr.set("gone@example.com", reply550)
	tr.set("busy@example.com", reply450)
	f := newFixture(t, tr)
	obs := &countObserver{}
	h := f.handler(t).With(relay.WithObserver(obs))
	want := func(step string, counts map[string]int, attempts int) {
		t.Helper()
		c, a := obs.snapshot()
		if !equalMaps(c, counts) || a["smarthost"] != attempts || len(a) != 1 {
			t.Errorf("%s: counts %v attempts %v; want %v and %d", step, c, a, counts, attempts)
		}
	}

	mustRetry(t, f.handle(t, h, 1), 0, time.Hour)
	want("first attempt", map[string]int{"smarthost/delivered": 1, "smarthost/failed": 1, "smarthost/deferred": 1}, 1)

	f.now = testCreated.Add(4*time.Hour + time.Second)
	if err := f.handle(t, h, 2); err != nil {
		t.Fatal(err)
	}
	want("past max age", map[string]int{"smarthost/delivered": 1, "smarthost/failed": 1, "smarthost/deferred": 1, "smarthost/expired": 1}, 2)

	// A route the configuration does not name is never a label.
	f.job.Route = "not-configured"
	if err := f.handle(t, h, 1); !postern.IsPermanent(err) {
		t.Fatalf("unknown route: %v", err)
	}
	want("unknown route", map[string]int{"smarthost/delivered": 1, "smarthost/failed": 1, "smarthost/deferred": 1, "smarthost/expired": 1}, 2)

	// A fault on this side counts the recipients it left unsettled.
	g := newFixture(t, &fakeTransport{err: errors.New("store read failed")})
	obs2 := &countObserver{}
	if err := g.handle(t, g.handler(t).With(relay.WithObserver(obs2)), 1); err == nil {
		t.Fatal("Handle succeeded")
	}
	if c, a := obs2.snapshot(); !equalMaps(c, map[string]int{"smarthost/error": 3}) || a["smarthost"] != 1 {
		t.Errorf("transport error: counts %v attempts %v", c, a)
	}
	// The DSN queue down: the refused recipient is not settled, the
	// deferred one still counts.
	q := newFixture(t, tr)
	q.dsnq.SetErr(errors.New("queue down"))
	obs3 := &countObserver{}
	if err := q.handle(t, q.handler(t).With(relay.WithObserver(obs3)), 1); err == nil {
		t.Fatal("Handle succeeded with the dsn queue down")
	}
	if c, _ := obs3.snapshot(); !equalMaps(c, map[string]int{"smarthost/delivered": 1, "smarthost/error": 1, "smarthost/deferred": 1}) {
		t.Errorf("dsn queue down: counts %v", c)
	}
	// With leaves the original alone.
	if err := g.handle(t, g.handler(t), 2); err == nil {
		t.Fatal("Handle succeeded")
	}
	if c, a := obs2.snapshot(); c["smarthost/error"] != 3 || a["smarthost"] != 1 {
		t.Errorf("a handler without the observer reported to it: %v %v", c, a)
	}
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Graph's 429 with Retry-After, through the real transport: the job comes
// back no sooner than Graph asked, then delivers.
func TestRelayGraphRetryAfter(t *testing.T) {
	t.Parallel()
	ent := entratest.New(t)
	ent.AddApp("contoso", "app", "s3cret")
	graph := graphtest.New(t, ent.Valid)
	cache := oauthtok.NewCache()
	fetch := &oauthtok.Entra{Tenant: "contoso", ClientID: "app", Scope: "https://graph.microsoft.com/.default",
		TokenURL: ent.TokenURL("contoso"), Secret: func(context.Context) (string, error) { return "s3cret", nil }}
	tr, err := graphrelay.New(graphrelay.Config{Config: apirelay.Config{Mailbox: "scanner@contoso.com", BaseURL: graph.URL,
		TokenSource: func(ctx context.Context) (string, error) {
			tok, err := cache.Token(ctx, fetch)
			if err != nil {
				return "", err
			}
			return tok.AccessToken, nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, tr)
	f.job.Recipients = []string{"a@example.com"}
	h := f.handler(t)
	graph.FailNext(graphtest.Throttled(10 * time.Minute))
	mustRetry(t, f.handle(t, h, 1), 10*time.Minute, 10*time.Minute)
	f.now = f.now.Add(10 * time.Minute)
	if err := f.handle(t, h, 2); err != nil {
		t.Fatalf("Handle after the wait: %v", err)
	}
	if n := len(graph.Sent()); n != 1 {
		t.Errorf("Graph sent %d messages, want 1", n)
	}
}
