package parse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
)

var testNow = time.Date(2025, 2, 4, 10, 0, 0, 0, time.UTC)

type harness struct {
	h     *Handler
	store *memStore
	wh    *recorder
	relay *recorder
	dsn   *recorder
	logs  *logWriter
}

func newHarness(t *testing.T, rules []route.Rule) *harness {
	t.Helper()
	table, err := route.New(rules)
	if err != nil {
		t.Fatal(err)
	}
	hs := &harness{store: newMemStore(), wh: &recorder{}, relay: &recorder{}, dsn: &recorder{}, logs: &logWriter{t: t}}
	cfg := Config{InlineAttachmentMax: testInlineMax, Now: func() time.Time { return testNow }}
	out := Outbox{Webhook: hs.wh, Relay: hs.relay, DSN: hs.dsn}
	hs.h = New(cfg, hs.store, table, out, slog.New(slog.NewJSONHandler(hs.logs, nil)))
	return hs
}

// submit stores raw as the gateway would and returns the ParseJob body.
func (hs *harness) submit(t *testing.T, raw []byte, rcpts ...string) (postern.MsgID, postern.Envelope, []byte) {
	t.Helper()
	id := postern.NewMsgID()
	if err := hs.store.Put(context.Background(), id.RawKey(), bytes.NewReader(raw), nil); err != nil {
		t.Fatal(err)
	}
	env := postern.Envelope{
		V: postern.EnvelopeVersion, ID: id, Sender: "printer@example.com", Identity: "printer-3f",
		ClientIP: "192.0.2.10", HELO: "printer", Gateway: "gw1", ReceivedAt: testNow.Add(-time.Minute),
		Size: int64(len(raw)), SHA256: sha(raw),
	}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, postern.Recipient{Addr: r})
	}
	body, err := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: id, Envelope: env})
	if err != nil {
		t.Fatal(err)
	}
	return id, env, body
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// handleOne stores raw, runs the stage on it for rcpt and returns the one
// webhook job it queued.
func (hs *harness) handleOne(t *testing.T, raw []byte, rcpt string) (postern.MsgID, postern.WebhookJob) {
	t.Helper()
	id, _, body := hs.submit(t, raw, rcpt)
	if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	wh := hs.wh.sent()
	if len(wh) != 1 {
		t.Fatalf("webhook jobs = %d, want 1", len(wh))
	}
	return id, decode[postern.WebhookJob](t, wh[0])
}

var testRules = []route.Rule{
	{Name: "alarms", Recipients: []string{"ops@*"}, Headers: map[string]string{"Subject": "*scan ready*"}, Target: route.Target{Kind: route.KindWebhook}},
	{Name: "blocked", Recipients: []string{"blocked@*"}, Target: route.Target{Kind: route.KindReject}},
	{Name: "archive", Recipients: []string{"archive@example.com"}, Target: route.Target{Kind: route.KindDirectory}},
	{Name: "partners", Recipients: []string{"*@partner.example"}, Target: route.Target{Kind: route.KindRelay}},
}

func TestHandleParsesStoresAndRoutes(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	m := buildMessage(t)
	id, env, body := hs.submit(t, m.raw,
		"ops@example.com", "x@partner.example", "archive@example.com", "blocked@example.com",
		"nobody@example.com", "y@PARTNER.example")

	if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatalf("Handle: %v", err)
	}

	// The parsed form, with the large attachment moved out.
	p := decode[postern.Parsed](t, hs.store.object(t, id.ParsedKey()))
	if p.ID != id || p.Subject != "Scan ready – Büro 3" || p.HTML != m.html || len(p.Attachments) != 3 {
		t.Fatalf("parsed = id %s subject %q attachments %d", p.ID, p.Subject, len(p.Attachments))
	}
	// The archive keeps the envelope: on AWS there is no envelope.json.
	if p.Envelope == nil || !reflect.DeepEqual(*p.Envelope, env) {
		t.Errorf("parsed envelope = %+v, want the job's %+v", p.Envelope, env)
	}
	for i, a := range p.Attachments[:2] {
		if a.Key != "" || len(a.Content) == 0 || a.Size > testInlineMax {
			t.Errorf("attachment %d should be inline: %+v", i, a)
		}
	}
	pdf := p.Attachments[2]
	if pdf.Key != id.AttachmentKey(2) || pdf.Content != nil || pdf.Size != int64(len(m.pdf)) || pdf.SHA256 != sha(m.pdf) {
		t.Errorf("large attachment = %+v", pdf)
	}
	if got := hs.store.object(t, id.AttachmentKey(2)); !bytes.Equal(got, m.pdf) {
		t.Errorf("stored attachment differs: %d bytes", len(got))
	}
	if typ := hs.store.ContentType(id.AttachmentKey(2)); typ != "application/pdf" {
		t.Errorf("stored content type %q", typ)
	}
	if typ := hs.store.ContentType(id.ParsedKey()); typ != "application/json" {
		t.Errorf("parsed content type %q", typ)
	}

	// Webhook and directory routes both go to the webhook queue, in order of
	// their first recipient, each with the stored parsed form inline (so the
	// webhook stage need not read it back).
	wh := hs.wh.sent()
	if len(wh) != 2 {
		t.Fatalf("webhook jobs = %d, want 2", len(wh))
	}
	parsed := json.RawMessage(hs.store.object(t, id.ParsedKey()))
	wantWH := []postern.WebhookJob{
		{V: postern.JobVersion, ID: id, Route: "alarms", Recipients: []string{"ops@example.com"}, Envelope: env, Created: testNow, Parsed: parsed},
		{V: postern.JobVersion, ID: id, Route: "archive", Recipients: []string{"archive@example.com"}, Envelope: env, Created: testNow, Parsed: parsed},
	}
	for i, b := range wh {
		got := decode[postern.WebhookJob](t, b)
		// Where its bodies are, also in the copy the job carries.
		if got.Bodies == nil {
			t.Errorf("webhook job %d says nothing of where the bodies are", i)
		} else if _, _, _, ok := got.Bodies.Cut(got.Parsed); !ok {
			t.Errorf("webhook job %d: its spans %+v do not cut the parsed form it carries", i, got.Bodies)
		}
		got.Bodies = nil
		if !reflect.DeepEqual(got, wantWH[i]) {
			t.Errorf("webhook job %d:\n got %+v\nwant %+v", i, got, wantWH[i])
		}
	}

	relay := hs.relay.sent()
	if len(relay) != 1 {
		t.Fatalf("relay jobs = %d, want 1", len(relay))
	}
	wantRelay := postern.RelayJob{V: postern.JobVersion, ID: id, Route: "partners",
		Recipients: []string{"x@partner.example", "y@PARTNER.example"}, Envelope: env, Created: testNow}
	if got := decode[postern.RelayJob](t, relay[0]); !reflect.DeepEqual(got, wantRelay) {
		t.Errorf("relay job:\n got %+v\nwant %+v", got, wantRelay)
	}

	dsn := hs.dsn.sent()
	if len(dsn) != 1 {
		t.Fatalf("dsn jobs = %d, want 1", len(dsn))
	}
	wantDSN := postern.DSNJob{V: postern.JobVersion, ID: id, Envelope: env, Created: testNow, Failed: []postern.Failure{
		{Recipient: "blocked@example.com", Route: "blocked", Status: "5.7.1", Diagnostic: "smtp; 550 5.7.1 recipient rejected by route", LastAt: testNow},
		{Recipient: "nobody@example.com", Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 recipient not routable", LastAt: testNow},
	}}
	if got := decode[postern.DSNJob](t, dsn[0]); !reflect.DeepEqual(got, wantDSN) {
		t.Errorf("dsn job:\n got %+v\nwant %+v", got, wantDSN)
	}

	// One log line per routed job, with the stable keys and no body text.
	var routed []map[string]any
	for _, l := range hs.logs.all() {
		if strings.Contains(l, "Scan finished") || strings.Contains(l, "Scan ready") {
			t.Errorf("log leaks message content: %s", l)
		}
		rec := decode[map[string]any](t, []byte(l))
		if rec["msg"] == "routed" {
			routed = append(routed, rec)
		}
	}
	if len(routed) != 4 {
		t.Fatalf("routed log lines = %d, want 4", len(routed))
	}
	for _, r := range routed {
		if r["msg_id"] != string(id) || r["stage"] != "parse" || r["attempt"] != float64(1) {
			t.Errorf("log line missing keys: %v", r)
		}
	}
	if routed[1]["route"] != "partners" || routed[1]["rcpt_count"] != float64(2) {
		t.Errorf("relay log line = %v", routed[1])
	}
}

// A retried job rewrites the same objects and enqueues the same jobs.
func TestHandleRetryIsIdempotent(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	id, _, body := hs.submit(t, buildMessage(t).raw, "archive@example.com")
	ctx := context.Background()
	if err := hs.h.Handle(ctx, postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	keys := hs.store.keys()
	parsed := bytes.Clone(hs.store.object(t, id.ParsedKey()))
	if err := hs.h.Handle(ctx, postern.Job{Body: body, Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	if got := hs.store.keys(); !slices.Equal(got, keys) {
		t.Errorf("keys after retry = %v, want %v", got, keys)
	}
	if !bytes.Equal(hs.store.object(t, id.ParsedKey()), parsed) {
		t.Error("parsed JSON changed on retry")
	}
	if jobs := hs.wh.sent(); len(jobs) != 2 || !bytes.Equal(jobs[0], jobs[1]) {
		t.Errorf("webhook jobs differ between tries: %q", jobs)
	}
}

func TestHandleMalformedMessageIsStillRouted(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	id, _, body := hs.submit(t, nested(1000), "archive@example.com")
	if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	p := decode[postern.Parsed](t, hs.store.object(t, id.ParsedKey()))
	if p.Subject != "nested" || !hasSevere(p.Errors) {
		t.Errorf("parsed = subject %q errors %+v", p.Subject, p.Errors)
	}
	if len(hs.wh.sent()) != 1 {
		t.Errorf("webhook jobs = %d, want 1", len(hs.wh.sent()))
	}
}

func TestHandleBadJobsArePermanent(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	id := postern.NewMsgID()
	tests := map[string]string{
		"not json":      `{"v":1,`,
		"wrong version": `{"v":2,"id":"` + string(id) + `"}`,
		"no version":    `{"id":"` + string(id) + `"}`,
		"bad id":        `{"v":1,"id":"../../etc/passwd"}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := hs.h.Handle(context.Background(), postern.Job{Body: []byte(body), Attempt: 1})
			if err == nil || !postern.IsPermanent(err) {
				t.Fatalf("Handle = %v, want a permanent error", err)
			}
		})
	}
}

func TestHandleInfrastructureFailuresAreTemporary(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name  string
		setup func(hs *harness, id postern.MsgID)
		want  error // wrapped, if set
	}{
		{"raw missing", func(hs *harness, id postern.MsgID) { _ = hs.store.Delete(context.Background(), id.RawKey()) }, blob.ErrNotFound},
		{"get fails", func(hs *harness, id postern.MsgID) {
			hs.store.Err = func(op, _ string) error {
				if op == "get" {
					return boom
				}
				return nil
			}
		}, boom},
		{"attachment put fails", func(hs *harness, id postern.MsgID) {
			hs.store.Err = func(op, key string) error {
				if op == "put" && strings.Contains(key, "/att/") {
					return boom
				}
				return nil
			}
		}, boom},
		{"parsed put fails", func(hs *harness, id postern.MsgID) {
			hs.store.Err = func(op, key string) error {
				if op == "put" && key == id.ParsedKey() {
					return boom
				}
				return nil
			}
		}, boom},
		{"webhook enqueue fails", func(hs *harness, id postern.MsgID) { hs.wh.err = boom }, boom},
		{"relay enqueue fails", func(hs *harness, id postern.MsgID) { hs.relay.err = boom }, boom},
		{"dsn enqueue fails", func(hs *harness, id postern.MsgID) { hs.dsn.err = boom }, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t, testRules)
			id, _, body := hs.submit(t, buildMessage(t).raw, "archive@example.com", "x@partner.example", "nobody@example.com")
			tt.setup(hs, id)
			err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1})
			if err == nil || postern.IsPermanent(err) {
				t.Fatalf("Handle = %v, want a temporary error", err)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Handle = %v, want it to wrap %v", err, tt.want)
			}
		})
	}
}

func TestHandleNoRecipients(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	id, _, body := hs.submit(t, buildMessage(t).raw)
	if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	hs.store.object(t, id.ParsedKey())
	if n := len(hs.wh.sent()) + len(hs.relay.sent()) + len(hs.dsn.sent()); n != 0 {
		t.Errorf("%d jobs for a message without recipients", n)
	}
}

func TestStoredType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"application/pdf":         "application/pdf",
		"image/svg+xml":           "image/svg+xml",
		"":                        "application/octet-stream",
		"pdf":                     "application/octet-stream",
		"text/plain\r\nX-Evil: 1": "application/octet-stream",
		"a/b; charset=x":          "application/octet-stream",
	} {
		if got := storedType(in); got != want {
			t.Errorf("storedType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	t.Parallel()
	table, err := route.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a missing DSN queue")
		}
	}()
	New(Config{}, newMemStore(), table, Outbox{Webhook: &recorder{}, Relay: &recorder{}}, nil)
}

// countingStore records how many raw messages are being read at once.
type countingStore struct {
	*memStore
	mu       sync.Mutex
	now, max int
}

func (s *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if !strings.HasSuffix(key, "/raw.eml") {
		return s.memStore.Get(ctx, key)
	}
	s.mu.Lock()
	s.now++
	s.max = max(s.max, s.now)
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond) // a slow read, so overlaps show
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
	return s.memStore.Get(ctx, key)
}

// Large messages share the memory budget: with room for one, concurrent
// jobs parse them one at a time; small ones run side by side.
func TestHandleBoundsParseMemory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size    int
		wantMax int
	}{{size: 1 << 20, wantMax: 1}, {size: 1 << 10, wantMax: 4}} {
		hs := newHarness(t, testRules)
		cs := &countingStore{memStore: hs.store}
		table, _ := route.New(testRules)
		h := New(Config{MemoryBudget: 3 << 20}, cs, table, Outbox{Webhook: hs.wh, Relay: hs.relay, DSN: hs.dsn}, nil)
		raw := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcde\n"), tc.size/16)...)
		var wg sync.WaitGroup
		for range 4 {
			_, _, body := hs.submit(t, raw, "archive@example.com")
			wg.Go(func() {
				if err := h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if cs.max != tc.wantMax {
			t.Errorf("%d-byte messages: %d parsed at once, want %d", tc.size, cs.max, tc.wantMax)
		}
	}
}

// A parsed form too large to ride in the webhook job is read back from the
// store; the job says where its bodies are, and the spans cut that stored
// parsed.json into the document without them and the two JSON strings.
func TestHandleLargeParsedSendsBodySpans(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	text := strings.Repeat("Line of a long report <total> & \"sum\"\r\n", 6000)
	raw := []byte("From: erp@example.com\r\nTo: ops@example.com\r\nSubject: scan ready\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + text)
	id, job := hs.handleOne(t, raw, "ops@example.com")
	stored := hs.store.object(t, id.ParsedKey())
	if len(job.Parsed) != 0 || job.Bodies == nil || len(stored) <= postern.MaxInlineParsed {
		t.Fatalf("job: %d bytes inline, spans %v; parsed.json %d bytes", len(job.Parsed), job.Bodies, len(stored))
	}
	rest, tj, hj, ok := job.Bodies.Cut(stored)
	if !ok {
		t.Fatalf("the job's spans %+v do not cut the stored parsed.json", job.Bodies)
	}
	var gotText, gotHTML string
	if err := json.Unmarshal(tj, &gotText); err != nil || gotText != text {
		t.Errorf("text span: %v, %d bytes, want the %d-byte text", err, len(gotText), len(text))
	}
	if err := json.Unmarshal(hj, &gotHTML); err != nil || gotHTML != "" {
		t.Errorf("html span %q: %v", hj, err)
	}
	p := decode[postern.Parsed](t, rest)
	if p.ID != id || p.Subject != "scan ready" || p.Text != "" {
		t.Errorf("the rest decodes to id %s subject %q text %d bytes", p.ID, p.Subject, len(p.Text))
	}
}

// With ReferParsed (one machine) a webhook job never carries the parsed
// form, however small: it names parsed.json and where its bodies are.
func TestHandleReferParsed(t *testing.T) {
	t.Parallel()
	hs := newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax, ReferParsed: true})
	id, job := hs.handleOne(t, []byte("Subject: scan ready\r\n\r\nsmall\r\n"), "ops@example.com")
	if len(job.Parsed) != 0 || job.Bodies == nil {
		t.Fatalf("job carries %d bytes of the parsed form, spans %v", len(job.Parsed), job.Bodies)
	}
	if _, text, _, ok := job.Bodies.Cut(hs.store.object(t, id.ParsedKey())); !ok || string(text) != `"small\r\n"` {
		t.Errorf("spans do not cut parsed.json: %v %s", ok, text)
	}
}

// A webhook job whose parsed form rides in it is JSON that decodes to the
// job, the parsed form byte for byte as parse stored it.
func TestEncodeJobCarriesParsedAsStored(t *testing.T) {
	t.Parallel()
	parsed := []byte(`{"v":1,"text":"a \u003c b","html":""}`)
	job := postern.WebhookJob{V: 1, ID: "01JEXAMPLE0000000000000000", Route: "r", Recipients: []string{"a@b"}, Parsed: parsed, AuthResults: "x"}
	b, err := encodeJob(job)
	if err != nil {
		t.Fatal(err)
	}
	got := decode[postern.WebhookJob](t, b)
	if !bytes.Equal(got.Parsed, parsed) || got.Route != "r" || got.AuthResults != "x" || len(got.Recipients) != 1 {
		t.Fatalf("decoded %+v from %s", got, b)
	}
	if !json.Valid(b) {
		t.Fatalf("not JSON: %s", b)
	}
}

// On one machine the text of a large single text/plain part of 7-bit text
// is named in raw.eml (TextRaw) instead of copied into parsed.json, on the
// whole path and the large one; any other text stays in parsed.json.
func TestHandleTextRaw(t *testing.T) {
	t.Parallel()
	report := strings.Repeat("00000042 invoice 2026-12 amount 1234.56 EUR <ok>\r\n", 2000) // 100 KB
	for _, tc := range []struct {
		name  string
		raw   string
		refer bool
		want  bool // named in raw.eml
	}{
		{"whole path", "Subject: report\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + report, true, true},
		{"large path", "Subject: report\r\n\r\n" + strings.Repeat(report, 12), true, true},
		{"capped", "Subject: report\r\n\r\n" + strings.Repeat(report, 24), true, true},
		{"on AWS", "Subject: report\r\n\r\n" + report, false, false},
		{"short", "Subject: report\r\n\r\nsmall\r\n", true, false},
		{"NUL", "Subject: report\r\n\r\n" + report + "\x00\r\n", true, false},
		{"quoted-printable", "Subject: report\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + report, true, false},
		{"multipart", "Subject: report\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + report + "\r\n--b--\r\n", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarnessCfg(t, Config{InlineAttachmentMax: testInlineMax, ReferParsed: tc.refer})
			raw := []byte(tc.raw)
			id, _, body := hs.submit(t, raw, "ops@example.com")
			if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			p := decode[postern.Parsed](t, hs.store.object(t, id.ParsedKey()))
			want := Parse(raw, Config{})
			if got := p.TextRaw != nil; got != tc.want {
				t.Fatalf("text named in raw.eml: %v, want %v", got, tc.want)
			}
			if p.TextTruncated != want.TextTruncated {
				t.Errorf("text truncated %v, want %v", p.TextTruncated, want.TextTruncated)
			}
			text := p.Text
			if p.TextRaw != nil {
				if p.Text != "" {
					t.Error("the text is both named and held")
				}
				b, err := postern.ReadTextRaw(bytes.NewReader(hs.store.object(t, id.RawKey())), *p.TextRaw)
				if err != nil {
					t.Fatal(err)
				}
				text = b
			}
			if text != want.Text {
				t.Errorf("the text is %d bytes, want the %d Parse gives", len(text), len(want.Text))
			}
		})
	}
}
