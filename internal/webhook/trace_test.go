package webhook

import (
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"github.com/postern/postern/internal/trace"
)

// attempts records what an Observer is told.
type attempts struct {
	mu  sync.Mutex
	got []Attempt
}

func (a *attempts) WebhookAttempt(at Attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, at)
}

func (a *attempts) all() []Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Attempt(nil), a.got...)
}

// A webhook refused with 410 shows in the trace as failed 410, not as
// "done" with the status of the failure_url POST that followed; the DSN and
// the failure notice are lines of their own. The observer counts the
// attempt as failed on its route.
func TestTraceShowsTheDeliverysOwnOutcome(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env, err := json.Marshal(f.job.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, f.job.ID.EnvelopeKey(), env)
	srv := serve(t, &recorder{statuses: []int{410}})
	failSrv := serve(t, &recorder{statuses: []int{200}})
	obs := &attempts{}
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}, FailureURL: failSrv.URL}, &fakeSender{}, testNow, WithObserver(obs))
	traced := trace.Wrap("webhook", h, f.store, slog.New(slog.DiscardHandler))
	if err := traced.Handle(t.Context(), f.jobBody(t, 2)); err != nil {
		t.Fatal(err)
	}
	evs, err := trace.Read(t.Context(), f.store, f.job.ID, []string{"scans"})
	if err != nil {
		t.Fatal(err)
	}
	type line struct {
		event  string
		status int
		detail string
	}
	var got []line
	for _, ev := range evs[1:] {
		got = append(got, line{ev.Event, ev.Status, ev.Detail})
	}
	want := []line{
		{trace.EventFailed, 410, "http; 410 Gone"},
		{trace.EventDSNQueued, 0, statusRejected},
		{trace.EventFailureNotice, 200, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("trace %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("trace line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if a := obs.all(); len(a) != 1 || a[0].Route != "scans" || a[0].Outcome != OutcomeFailed || a[0].Status != 410 {
		t.Errorf("observed %+v, want one failed attempt with 410 on route scans", a)
	}
}

// Each kind of attempt is observed with its own outcome.
func TestObserverOutcomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		maxAge bool // the attempt is at the max age
		want   string
	}{
		{200, false, OutcomeDelivered},
		{503, false, OutcomeRetry},
		{503, true, OutcomeExpired},
		{404, false, OutcomeFailed},
	} {
		f := newFixture(t)
		srv := serve(t, &recorder{statuses: []int{tc.status}})
		target := Target{URL: srv.URL, Secrets: [][]byte{testSecret}}
		now := testNow
		if tc.maxAge {
			now = f.job.Created.Add(DefaultMaxAge)
		}
		obs := &attempts{}
		h := f.handler(t, target, &fakeSender{}, now, WithObserver(obs))
		_ = h.Handle(t.Context(), f.jobBody(t, 1))
		if a := obs.all(); len(a) != 1 || a[0].Outcome != tc.want || a[0].Route != "scans" {
			t.Errorf("status %d (at max age %v): observed %+v, want %s", tc.status, tc.maxAge, a, tc.want)
		}
	}
	// A fault on this side (the message is gone) is an error, not the receiver's.
	f := newFixture(t)
	if err := f.store.Delete(t.Context(), f.job.ID.ParsedKey()); err != nil {
		t.Fatal(err)
	}
	f.job.Parsed = nil
	obs := &attempts{}
	h := f.handler(t, Target{URL: "http://127.0.0.1:1", Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow, WithObserver(obs))
	_ = h.Handle(t.Context(), f.jobBody(t, 1))
	if a := obs.all(); len(a) != 1 || a[0].Outcome != OutcomeError {
		t.Errorf("prepare failure observed as %+v, want error", a)
	}
}

// A delivered webhook is "delivered" in the trace, with the receiver's status.
func TestTraceShowsDelivered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	env, err := json.Marshal(f.job.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, f.job.ID.EnvelopeKey(), env)
	srv := serve(t, &recorder{statuses: []int{202}})
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow)
	if err := trace.Wrap("webhook", h, f.store, slog.New(slog.DiscardHandler)).Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	evs, err := trace.Read(t.Context(), f.store, f.job.ID, []string{"scans"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].Event != trace.EventDelivered || evs[1].Status != 202 || evs[1].Detail != "" {
		t.Fatalf("trace %+v, want received then delivered 202", evs)
	}
}
