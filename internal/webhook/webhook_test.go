package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/logbuf"
	"github.com/postern/postern/internal/postern"
)

// mustTemporary fails unless err is a retryable (non-nil, non-permanent) error.
func mustTemporary(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Handle = nil, want a temporary error")
	}
	if postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, permanent; want temporary", err)
	}
}

func TestDeliverJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec)
	dsn := &fakeSender{}
	h := f.handler(t, Target{URL: srv.URL + "/hook", Secrets: [][]byte{testSecret}}, dsn, testNow, WithURLs(fakeURLs{}))

	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if err := Verify([][]byte{testSecret}, r.header, r.body, time.Minute, testNow); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for name, want := range map[string]string{
		HeaderID:        string(f.job.ID) + ".scans",
		HeaderTimestamp: "1741082400",
		"Content-Type":  "application/json",
		"User-Agent":    "Postern/1",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if n := len(strings.Fields(r.header.Get(HeaderSignature))); n != 1 {
		t.Errorf("%d signatures, want 1", n)
	}

	var ev ReceivedEvent
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields() // the structs are the whole contract
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("decode body: %v", err)
	}
	d := ev.Data
	p := f.parsed
	env := f.job.Envelope
	if ev.Type != EventReceived || !ev.Timestamp.Equal(env.ReceivedAt) {
		t.Errorf("type, timestamp = %q, %v; want %q, %v", ev.Type, ev.Timestamp, EventReceived, env.ReceivedAt)
	}
	if d.V != 1 || d.ID != f.job.ID || d.Route != "scans" || d.Identity != "scanner-2f" {
		t.Errorf("v, id, route, identity = %d, %s, %s, %s", d.V, d.ID, d.Route, d.Identity)
	}
	if d.Envelope.Sender != env.Sender || !slices.Equal(d.Envelope.Recipients, f.job.Recipients) || d.Envelope.Listener != "submission" {
		t.Errorf("envelope = %+v, want sender %s and the job's recipients %v", d.Envelope, env.Sender, f.job.Recipients)
	}
	if len(d.From) != 1 || d.From[0] != (Address{Name: "Scanner", Address: "scan@dev.example"}) ||
		len(d.To) != 1 || d.To[0].Address != "inbox@app.example" ||
		len(d.Cc) != 1 || d.Cc[0].Address != "cc@app.example" ||
		len(d.ReplyTo) != 1 || d.ReplyTo[0].Address != "replies@dev.example" {
		t.Errorf("header addresses = from %v to %v cc %v reply-to %v", d.From, d.To, d.Cc, d.ReplyTo)
	}
	if d.Subject != p.Subject || d.Date != p.Date.Format(time.RFC3339Nano) || d.MessageID != p.MessageID ||
		!slices.Equal(d.InReplyTo, p.InReplyTo) || !slices.Equal(d.References, p.References) {
		t.Errorf("subject/date/ids = %q %v %q %v %v", d.Subject, d.Date, d.MessageID, d.InReplyTo, d.References)
	}
	if len(d.Headers) != 2 || d.Headers[1] != (Header{Name: "Subject", Value: "Scan 42"}) {
		t.Errorf("headers = %v", d.Headers)
	}
	if d.Text != "hello" || d.HTML != "<p>hello</p>" || d.TextDerived || !d.TextTruncated || d.HTMLTruncated {
		t.Errorf("bodies = %q %q derived=%v truncated=%v/%v", d.Text, d.HTML, d.TextDerived, d.TextTruncated, d.HTMLTruncated)
	}
	if len(d.Attachments) != 2 {
		t.Fatalf("attachments = %v", d.Attachments)
	}
	if a := d.Attachments[0]; string(a.Content) != "abc" || a.Key != "" || a.URL != "" || a.Filename != "small.txt" || a.SHA256 != sumABC {
		t.Errorf("inline attachment = %+v", a)
	}
	wantKey := f.job.ID.AttachmentKey(1)
	if a := d.Attachments[1]; len(a.Content) != 0 || a.Key != wantKey || a.URL != "https://files.example/"+wantKey+"?sig=x" ||
		a.ContentID != "<c1>" || a.Disposition != "inline" || a.DetectedType != "application/pdf" || a.Size != 900000 {
		t.Errorf("stored attachment = %+v", a)
	}
	if d.Raw != (Raw{Key: f.job.ID.RawKey(), URL: "https://files.example/" + f.job.ID.RawKey() + "?sig=x", Size: env.Size, SHA256: env.SHA256}) {
		t.Errorf("raw = %+v", d.Raw)
	}
	if len(d.ParseErrors) != 1 || d.ParseErrors[0] != (ParseError{Name: "charset", Detail: "unknown charset x-foo"}) {
		t.Errorf("parse errors = %v", d.ParseErrors)
	}
	c := d.Client
	if c.IP != "192.0.2.10" || c.HELO != "scanner.lan" || c.AuthMech != "PLAIN" || c.Identity != "scanner-2f" ||
		!c.ReceivedAt.Equal(env.ReceivedAt) || c.TLS != (TLS{Version: "TLS1.3", Cipher: "TLS_AES_128_GCM_SHA256"}) {
		t.Errorf("client = %+v", c)
	}

	// The wire names are the contract: spot-check them in the raw JSON.
	var generic struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.body, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"v", "id", "route", "envelope", "from", "to", "cc", "reply_to", "message_id", "in_reply_to", "references", "headers", "text_truncated", "attachments", "raw", "parse_errors", "client"} {
		if _, ok := generic.Data[k]; !ok {
			t.Errorf("data has no %q", k)
		}
	}
	if string(generic.Data["v"]) != "1" {
		t.Errorf(`data.v = %s, want 1`, generic.Data["v"])
	}
	if len(dsn.jobs(t)) != 0 {
		t.Error("a delivered message queued a DSN")
	}
}

// Without a link maker the payload carries keys only.
func TestDeliverJSONWithoutURLs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec)
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	var ev ReceivedEvent
	if err := json.Unmarshal(rec.requests()[0].body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Data.Raw.URL != "" || ev.Data.Attachments[1].URL != "" || ev.Data.Attachments[1].Key == "" {
		t.Errorf("raw %+v, attachment %+v: want keys and no URLs", ev.Data.Raw, ev.Data.Attachments[1])
	}
	if n, empty := bytes.Count(rec.requests()[0].body, []byte(`"url"`)), bytes.Count(rec.requests()[0].body, []byte(`"url":""`)); n != empty {
		t.Errorf(`body has %d "url" fields, %d of them empty; want all empty`, n, empty)
	}
}

func TestTwoSecretsBothSign(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec)
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret, testSecret2}}, &fakeSender{}, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	r := rec.requests()[0]
	if n := len(strings.Fields(r.header.Get(HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
	for _, s := range [][]byte{testSecret, testSecret2} {
		if err := Verify([][]byte{s}, r.header, r.body, time.Minute, testNow); err != nil {
			t.Errorf("Verify with %q alone: %v", s, err)
		}
	}
	if err := Verify([][]byte{[]byte("third")}, r.header, r.body, time.Minute, testNow); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify with an unrelated secret = %v, want ErrSignature", err)
	}
}

func TestRetryThenSuccessKeepsWebhookID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{statuses: []int{500, 200}}
	srv := serve(t, rec)
	dsn := &fakeSender{}
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, dsn, testNow)

	err := h.Handle(t.Context(), f.jobBody(t, 1))
	mustTemporary(t, err)
	if d, ok := postern.RetryDelay(err); !ok || d < 0 || d > DefaultBackoffBase {
		t.Errorf("RetryDelay = %v, %v without Retry-After; want the first backoff, at most %v", d, ok, DefaultBackoffBase)
	}
	if err := h.Handle(t.Context(), f.jobBody(t, 2)); err != nil {
		t.Fatalf("second Handle: %v", err)
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if a, b := reqs[0].header.Get(HeaderID), reqs[1].header.Get(HeaderID); a != b || a == "" {
		t.Errorf("webhook-id %q then %q, want the same", a, b)
	}
	if len(dsn.jobs(t)) != 0 {
		t.Error("a retried then delivered message queued a DSN")
	}
}

func TestTemporaryStatuses(t *testing.T) {
	t.Parallel()
	for _, code := range []int{408, 425, 429, 500, 502, 503, 504, 302} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			srv := serve(t, &recorder{statuses: []int{code}})
			dsn := &fakeSender{}
			h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, dsn, testNow)
			mustTemporary(t, h.Handle(t.Context(), f.jobBody(t, 1)))
			if len(dsn.jobs(t)) != 0 {
				t.Errorf("status %d queued a DSN before max age", code)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{429}, header: http.Header{"Retry-After": {"7"}}})
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow)
	err := h.Handle(t.Context(), f.jobBody(t, 1))
	mustTemporary(t, err)
	if d, ok := postern.RetryDelay(err); !ok || d != 7*time.Second {
		t.Fatalf("RetryDelay = %v, %v; want 7s", d, ok)
	}
}

func TestPermanentRefusalQueuesDSN(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{410}})
	notices := &recorder{}
	failSrv := serve(t, notices)
	dsn := &fakeSender{}
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}, FailureURL: failSrv.URL}, dsn, testNow)

	if err := h.Handle(t.Context(), f.jobBody(t, 3)); err != nil {
		t.Fatalf("Handle = %v, want nil once the DSN is queued", err)
	}
	jobs := dsn.jobs(t)
	if len(jobs) != 1 {
		t.Fatalf("%d DSN jobs, want 1", len(jobs))
	}
	j := jobs[0]
	if j.V != postern.JobVersion || j.ID != f.job.ID || j.Envelope.Sender != f.job.Envelope.Sender || !j.Created.Equal(testNow) {
		t.Errorf("dsn job = v%d %s sender %q created %v", j.V, j.ID, j.Envelope.Sender, j.Created)
	}
	var rcpts []string
	for _, fl := range j.Failed {
		rcpts = append(rcpts, fl.Recipient)
		if fl.Status != "5.0.0" || fl.Diagnostic != "http; 410 Gone" || fl.Route != "scans" || !fl.LastAt.Equal(testNow) {
			t.Errorf("failure = %+v", fl)
		}
	}
	if !slices.Equal(rcpts, f.job.Recipients) {
		t.Errorf("failed recipients = %v, want the job's %v (not the whole envelope)", rcpts, f.job.Recipients)
	}

	// The failure notice: signed, its own id, no message content.
	ns := notices.requests()
	if len(ns) != 1 {
		t.Fatalf("%d failure notices, want 1", len(ns))
	}
	n := ns[0]
	if err := Verify([][]byte{testSecret}, n.header, n.body, time.Minute, testNow); err != nil {
		t.Errorf("notice Verify: %v", err)
	}
	if got, want := n.header.Get(HeaderID), string(f.job.ID)+".scans.failed"; got != want {
		t.Errorf("notice webhook-id = %q, want %q", got, want)
	}
	var ev FailedEvent
	if err := json.Unmarshal(n.body, &ev); err != nil {
		t.Fatal(err)
	}
	want := Failed{V: 1, ID: f.job.ID, Route: "scans", WebhookID: string(f.job.ID) + ".scans", Recipients: f.job.Recipients,
		Reason: "rejected", Status: "5.0.0", Diagnostic: "http; 410 Gone", Attempts: 3, Created: f.job.Created}
	if ev.Type != EventFailed || !equalFailed(ev.Data, want) {
		t.Errorf("notice = %s %+v, want %+v", ev.Type, ev.Data, want)
	}
	if bytes.Contains(n.body, []byte("hello")) {
		t.Error("failure notice carries message content")
	}
}

func equalFailed(a, b Failed) bool {
	return a.V == b.V && a.ID == b.ID && a.Route == b.Route && a.WebhookID == b.WebhookID &&
		slices.Equal(a.Recipients, b.Recipients) && a.Reason == b.Reason && a.Status == b.Status &&
		a.Diagnostic == b.Diagnostic && a.Attempts == b.Attempts && a.Created.Equal(b.Created)
}

// A failure URL that is down does not hold up the DSN or the job.
func TestFailureNoticeIsBestEffort(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{404}})
	dsn := &fakeSender{}
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}, FailureURL: closedURL(t)}, dsn, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatalf("Handle = %v, want nil", err)
	}
	if len(dsn.jobs(t)) != 1 {
		t.Fatal("no DSN queued")
	}
}

func TestDSNQueueDownRetries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{410}})
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, &fakeSender{err: errors.New("queue unavailable")}, testNow)
	mustTemporary(t, h.Handle(t.Context(), f.jobBody(t, 1)))
}

func TestExpiredQueuesDSN(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{503}})
	target := Target{URL: srv.URL, Secrets: [][]byte{testSecret}, MaxAge: time.Hour}

	// Inside max age: retried.
	dsn := &fakeSender{}
	h := f.handler(t, target, dsn, f.job.Created.Add(59*time.Minute))
	mustTemporary(t, h.Handle(t.Context(), f.jobBody(t, 5)))
	if len(dsn.jobs(t)) != 0 {
		t.Fatal("DSN queued inside max age")
	}

	// Past it: given up with a DSN.
	h = f.handler(t, target, dsn, f.job.Created.Add(61*time.Minute))
	if err := h.Handle(t.Context(), f.jobBody(t, 6)); err != nil {
		t.Fatalf("Handle = %v, want nil once the DSN is queued", err)
	}
	jobs := dsn.jobs(t)
	if len(jobs) != 1 || len(jobs[0].Failed) != 2 {
		t.Fatalf("dsn jobs = %+v", jobs)
	}
	for _, fl := range jobs[0].Failed {
		if fl.Status != "4.4.7" || fl.Diagnostic != "http; 503 Service Unavailable" {
			t.Errorf("failure = %+v, want 4.4.7 with the last status", fl)
		}
	}
}

// Max age defaults to 24 h.
func TestExpiredDefaultMaxAge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{500}})
	dsn := &fakeSender{}
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, dsn, f.job.Created.Add(24*time.Hour+time.Second))
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	if len(dsn.jobs(t)) != 1 {
		t.Fatal("no DSN past the default max age")
	}
}

// closedURL is the address of a loopback server that has been shut.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func TestNetworkErrorIsTemporary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := closedURL(t)
	dsn := &fakeSender{}
	h := f.handler(t, Target{URL: u, Secrets: [][]byte{testSecret}}, dsn, testNow)
	err := h.Handle(t.Context(), f.jobBody(t, 1))
	mustTemporary(t, err)
	if strings.Contains(err.Error(), u) {
		t.Errorf("error %q names the target URL", err)
	}

	// The same failure past max age ends in a DSN naming the error class.
	h = f.handler(t, Target{URL: u, Secrets: [][]byte{testSecret}}, dsn, testNow.Add(25*time.Hour))
	if err := h.Handle(t.Context(), f.jobBody(t, 9)); err != nil {
		t.Fatal(err)
	}
	jobs := dsn.jobs(t)
	if len(jobs) != 1 || jobs[0].Failed[0].Diagnostic != "http; connection refused" {
		t.Fatalf("dsn jobs = %+v, want diagnostic http; connection refused", jobs)
	}
}

func TestTimeoutIsTemporary(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // lets the server notice the client hang up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: Close waits for handlers
	dsn := &fakeSender{}
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}, Timeout: 100 * time.Millisecond}, dsn, testNow.Add(25*time.Hour))
	start := time.Now()
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v; the target timeout was 100ms", el)
	}
	jobs := dsn.jobs(t)
	if len(jobs) != 1 || jobs[0].Failed[0].Diagnostic != "http; timeout" {
		t.Fatalf("dsn jobs = %+v, want diagnostic http; timeout", jobs)
	}
}

// A cancelled context (shutdown) is never the receiver's fault: no DSN even
// past max age.
func TestCancelledIsNotAFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{})
	dsn := &fakeSender{}
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret}}, dsn, testNow.Add(48*time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	mustTemporary(t, h.Handle(ctx, f.jobBody(t, 1)))
	if len(dsn.jobs(t)) != 0 {
		t.Error("a cancelled attempt queued a DSN")
	}
}

func TestRawPayload(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec)
	h := f.handler(t, Target{URL: srv.URL, Secrets: [][]byte{testSecret, testSecret2}, Payload: PayloadRaw}, &fakeSender{}, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	r := rec.requests()[0]
	if !bytes.Equal(r.body, f.raw) {
		t.Errorf("body = %q, want the raw message", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "message/rfc822" {
		t.Errorf("Content-Type = %q", ct)
	}
	if got, want := r.header.Get(HeaderID), string(f.job.ID)+".scans"; got != want {
		t.Errorf("webhook-id = %q, want %q", got, want)
	}
	for _, s := range [][]byte{testSecret, testSecret2} {
		if err := Verify([][]byte{s}, r.header, r.body, time.Minute, testNow); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
}

func TestDirectoryTarget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := filepath.Join(t.TempDir(), "outbox")
	h := f.handler(t, Target{Dir: dir}, &fakeSender{}, testNow)
	for attempt := 1; attempt <= 2; attempt++ { // a redelivery rewrites the same file
		if err := h.Handle(t.Context(), f.jobBody(t, attempt)); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := string(f.job.ID) + ".scans.json"
	if len(entries) != 1 || entries[0].Name() != want {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("dir holds %v, want just %s", names, want)
	}
	checkPayloadFile(t, filepath.Join(dir, want))
	b, err := os.ReadFile(filepath.Join(dir, want))
	if err != nil {
		t.Fatal(err)
	}
	var ev ReceivedEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("file does not parse: %v", err)
	}
	if ev.Type != EventReceived || ev.Data.ID != f.job.ID || ev.Data.Subject != "Scan 42" {
		t.Errorf("file event = %s %s %q", ev.Type, ev.Data.ID, ev.Data.Subject)
	}
}

func TestDirectoryTargetRaw(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	h := f.handler(t, Target{Dir: dir, Payload: PayloadRaw}, &fakeSender{}, testNow)
	if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, string(f.job.ID)+".scans.eml"))
	if err != nil || !bytes.Equal(b, f.raw) {
		t.Fatalf("raw file = %q, %v", b, err)
	}
}

// A directory that cannot be written is retried like a failing receiver.
func TestDirectoryTargetUnwritable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h := f.handler(t, Target{Dir: filepath.Join(blocker, "sub")}, &fakeSender{}, testNow)
	mustTemporary(t, h.Handle(t.Context(), f.jobBody(t, 1)))
}

func TestJobsThatCanNeverSucceed(t *testing.T) {
	t.Parallel()
	srv := serve(t, &recorder{})
	tests := []struct {
		name  string
		edit  func(f *fixture)
		body  []byte
		route Target
	}{
		{name: "unknown route", edit: func(f *fixture) { f.job.Route = "gone" }},
		{name: "malformed body", body: []byte("{not json")},
		{name: "bad id", edit: func(f *fixture) { f.job.ID = "../../etc" }},
		{name: "future job version", edit: func(f *fixture) { f.job.V = 2 }},
		{name: "parsed missing", edit: func(f *fixture) { _ = f.store.Delete(context.Background(), f.job.ID.ParsedKey()) }},
		{name: "raw missing", edit: func(f *fixture) { _ = f.store.Delete(context.Background(), f.job.ID.RawKey()) }, route: Target{Payload: PayloadRaw}},
		{name: "unknown payload", route: Target{Payload: "xml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.edit != nil {
				tc.edit(f)
			}
			job := f.jobBody(t, 1)
			if tc.body != nil {
				job.Body = tc.body
			}
			target := tc.route
			target.URL, target.Secrets = srv.URL, [][]byte{testSecret}
			dsn := &fakeSender{}
			err := f.handler(t, target, dsn, testNow).Handle(t.Context(), job)
			if !postern.IsPermanent(err) {
				t.Fatalf("Handle = %v, want a permanent error", err)
			}
			if len(dsn.jobs(t)) != 0 {
				t.Error("queued a DSN for a job that was never attempted")
			}
		})
	}
}

// Logs carry the stable keys and never the body, the URL or a secret.
func TestAttemptLogLine(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := serve(t, &recorder{statuses: []int{503}})
	var buf logbuf.Buffer
	targets := func(string) (Target, bool) {
		return Target{URL: srv.URL + "/hook?token=s3cr3t-token", Secrets: [][]byte{testSecret}, AllowPrivate: true}, true
	}
	h := New(f.store, targets, nil, &fakeSender{}, slog.New(slog.NewJSONHandler(&buf, nil)), WithClock(func() time.Time { return testNow }))
	mustTemporary(t, h.Handle(t.Context(), f.jobBody(t, 4)))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", len(lines), buf.String())
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"msg_id": string(f.job.ID), "stage": "webhook", "route": "scans", "attempt": 4.0, "status": 503.0, "result": "retry"} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["latency_ms"]; !ok {
		t.Error("log has no latency_ms")
	}
	for _, secret := range []string{"s3cr3t-token", string(testSecret), "hello", "Scan 42", srv.URL} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}
