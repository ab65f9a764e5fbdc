package webhook

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/egress"
	"github.com/postern/postern/internal/logbuf"
)

// guardedHandler builds a Handler the way production does (nil client:
// guarded clients chosen per target) with the given target for "scans",
// logging JSON into buf.
func guardedHandler(t *testing.T, f *fixture, target Target, dsn Sender, now time.Time, buf *logbuf.Buffer) *Handler {
	t.Helper()
	targets := func(route string) (Target, bool) { return target, route == "scans" }
	log := slog.New(slog.NewJSONHandler(buf, nil))
	return New(f.store, targets, nil, dsn, log, WithClock(func() time.Time { return now }))
}

// SSRF: a target on loopback is refused unless the route allows private
// addresses, and the refusal is an ordinary temporary failure that names the
// address class, never the URL.
func TestLoopbackTargetRefusedUnlessAllowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec)
	target := Target{URL: srv.URL + "/hook?token=s3cr3t-token", Secrets: [][]byte{testSecret}}

	var buf logbuf.Buffer
	err := guardedHandler(t, f, target, &fakeSender{}, testNow, &buf).Handle(t.Context(), f.jobBody(t, 1))
	mustTemporary(t, err)
	if !strings.Contains(err.Error(), "address refused (loopback)") || strings.Contains(err.Error(), "s3cr3t-token") {
		t.Errorf("error %q: want the class named and the URL left out", err)
	}
	if !strings.Contains(buf.String(), `"diagnostic":"http; address refused (loopback)"`) {
		t.Errorf("log does not carry the diagnostic:\n%s", buf.String())
	}
	if n := len(rec.requests()); n != 0 {
		t.Fatalf("refused target received %d requests", n)
	}

	target.AllowPrivate = true
	if err := guardedHandler(t, f, target, &fakeSender{}, testNow, &buf).Handle(t.Context(), f.jobBody(t, 2)); err != nil {
		t.Fatalf("with AllowPrivate: %v", err)
	}
	if n := len(rec.requests()); n != 1 {
		t.Fatalf("allowed target received %d requests, want 1", n)
	}
}

// The metadata service is refused even for a route that allows private
// addresses; past max age the refusal ends in a DSN that says why.
func TestMetadataTargetAlwaysRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/api/token", "http://0.0.0.0:8080/"} {
		var buf logbuf.Buffer
		target := Target{URL: u, Secrets: [][]byte{testSecret}, AllowPrivate: true, Timeout: 5 * time.Second}
		mustTemporary(t, guardedHandler(t, f, target, &fakeSender{}, testNow, &buf).Handle(t.Context(), f.jobBody(t, 1)))

		dsn := &fakeSender{}
		if err := guardedHandler(t, f, target, dsn, testNow.Add(25*time.Hour), &buf).Handle(t.Context(), f.jobBody(t, 9)); err != nil {
			t.Fatalf("%s past max age: %v", u, err)
		}
		jobs := dsn.jobs(t)
		if len(jobs) != 1 || !strings.HasPrefix(jobs[0].Failed[0].Diagnostic, "http; address refused (") {
			t.Fatalf("%s: dsn jobs = %+v, want an address-refused diagnostic", u, jobs)
		}
	}
}

// A failure URL goes through the same guard as the webhook URL.
func TestFailureURLGuarded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{410}})
	var buf logbuf.Buffer
	target := Target{URL: srv.URL, Secrets: [][]byte{testSecret}, AllowPrivate: true,
		FailureURL: "http://169.254.169.254/notify"}
	dsn := &fakeSender{}
	if err := guardedHandler(t, f, target, dsn, testNow, &buf).Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatalf("Handle = %v, want nil once the DSN is queued", err)
	}
	if len(dsn.jobs(t)) != 1 {
		t.Fatal("no DSN queued")
	}
	if !strings.Contains(buf.String(), `"msg":"webhook failure notice failed"`) ||
		!strings.Contains(buf.String(), "address refused (cloud metadata)") {
		t.Errorf("failure notice to the metadata address was not refused:\n%s", buf.String())
	}
}

// A redirect is not followed, even to an allowed address: the 3xx is a
// failed attempt, retried, and the route's URL should be fixed.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	elsewhere := &recorder{}
	dst := serve(t, elsewhere)
	src := serve(t, &recorder{statuses: []int{http.StatusTemporaryRedirect}, header: http.Header{"Location": {dst.URL}}})
	var buf logbuf.Buffer
	target := Target{URL: src.URL, Secrets: [][]byte{testSecret}, AllowPrivate: true}
	mustTemporary(t, guardedHandler(t, f, target, &fakeSender{}, testNow, &buf).Handle(t.Context(), f.jobBody(t, 1)))
	if n := len(elsewhere.requests()); n != 0 {
		t.Fatalf("redirect followed: %d requests at its target", n)
	}
	if !strings.Contains(buf.String(), `"status":307`) {
		t.Errorf("log does not show the 307:\n%s", buf.String())
	}
}

// A client given to New is used as is, for every target: its owner decides
// where it may connect.
func TestGivenClientUsedAsIs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec)
	targets := func(string) (Target, bool) { return Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, true }
	h := New(f.store, targets, srv.Client(), &fakeSender{}, testLogger(t), WithClock(func() time.Time { return testNow }))
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

// webhook.allow: a route allowed one address reaches it, and no other
// private address, not even another port's service on the same host named
// differently: the list is checked on the address each connection goes to.
func TestAllowListPerRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec) // on 127.0.0.1
	only := func(entries ...string) egress.Allow {
		a, err := egress.ParseAllow(entries)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	var buf logbuf.Buffer
	target := Target{URL: srv.URL + "/hook", Secrets: [][]byte{testSecret}, Allow: only("127.0.0.1")}
	if err := guardedHandler(t, f, target, &fakeSender{}, testNow, &buf).Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatalf("allowed address: %v", err)
	}
	for _, allow := range []egress.Allow{only("127.0.0.2/32", "10.0.0.0/8"), only("app.internal"), only("192.168.0.0/16")} {
		target.Allow = allow
		err := guardedHandler(t, f, target, &fakeSender{}, testNow, &buf).Handle(t.Context(), f.jobBody(t, 2))
		mustTemporary(t, err)
		if !strings.Contains(err.Error(), "address refused (loopback)") {
			t.Errorf("allow %s: %v, want loopback refused", allow, err)
		}
	}
	if n := len(rec.requests()); n != 1 {
		t.Fatalf("receiver got %d requests, want 1", n)
	}
	// Two targets with different lists in one Handler keep their own.
	targets := map[string]Target{
		"scans": {URL: srv.URL, Secrets: [][]byte{testSecret}, Allow: only("127.0.0.0/8")},
		"other": {URL: srv.URL, Secrets: [][]byte{testSecret}, Allow: only("10.0.0.0/8")},
	}
	h := New(f.store, func(r string) (Target, bool) { t, ok := targets[r]; return t, ok }, nil, &fakeSender{}, testLogger(t),
		WithClock(func() time.Time { return testNow }))
	if err := h.Handle(t.Context(), f.jobBody(t, 3)); err != nil {
		t.Fatalf("scans: %v", err)
	}
	if h.clientFor(targets["scans"]) == h.clientFor(targets["other"]) || h.clientFor(targets["scans"]) != h.clientFor(targets["scans"]) {
		t.Error("clients are not one per policy")
	}
}
