package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/apispec"
	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/postern"
)

// fakeSender records what is queued for the dsn stage; err makes Send fail.
type fakeSender struct {
	mu     sync.Mutex
	bodies [][]byte
	err    error
}

var _ Sender = (*fakeSender)(nil)

func (f *fakeSender) Send(ctx context.Context, body []byte, delay time.Duration) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	f.bodies = append(f.bodies, bytes.Clone(body))
	return fmt.Sprint(len(f.bodies)), nil
}

func (f *fakeSender) jobs(t *testing.T) []postern.DSNJob {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]postern.DSNJob, len(f.bodies))
	for i, b := range f.bodies {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			t.Fatalf("dsn job %d: %v", i, err)
		}
	}
	return out
}

// fakeURLs makes deterministic links.
type fakeURLs struct{}

func (fakeURLs) URL(_ context.Context, key string) (string, error) {
	return "https://files.example/" + key + "?sig=x", nil
}

// captured is one request a test server received.
type captured struct {
	header http.Header
	body   []byte
}

// recorder is a test webhook receiver that answers with the scripted
// statuses in turn (the last one repeats) and records every request.
type recorder struct {
	mu       sync.Mutex
	reqs     []captured
	invalid  []error // requests that do not match the OpenAPI webhooks and payload schemas
	statuses []int
	header   http.Header // added to every response
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := apispec.ValidateWebhook(r.Header, body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, captured{header: r.Header.Clone(), body: body})
	if err != nil {
		rec.invalid = append(rec.invalid, fmt.Errorf("request %d: %w", len(rec.reqs), err))
	}
	status := http.StatusOK
	if n := len(rec.reqs); len(rec.statuses) > 0 {
		status = rec.statuses[min(n, len(rec.statuses))-1]
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	rec.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write([]byte("ok"))
}

func (rec *recorder) requests() []captured {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]captured(nil), rec.reqs...)
}

// serve starts rec on loopback for the length of the test. Every request
// it got must match the contracts (internal/apispec): checked once the
// server has closed, so none is missed.
func serve(t *testing.T, rec *recorder) *httptest.Server {
	t.Helper()
	t.Cleanup(func() {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, err := range rec.invalid {
			t.Errorf("the webhook receiver got a request that breaks the contract: %v", err)
		}
	})
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv
}

// checkPayloadFile checks a directory target's .json file against the
// payload schemas.
func checkPayloadFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := apispec.ValidatePayload(b); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

// SHA-256 (hex) of the fixture's attachments: "abc", and a stand-in for the stored PDF.
const (
	sumABC  = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	sumScan = "900db3ec3bae665c4655646b584de4b76db637cb94a959a2ebb7a5fa5534aae6"
)

var (
	testNow     = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	testSecret  = []byte("test-secret-one")
	testSecret2 = []byte("test-secret-two")
)

// fixture is a stored message and its webhook job.
type fixture struct {
	store  *memblob.Store
	job    postern.WebhookJob
	parsed postern.Parsed
	raw    []byte
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	id := postern.NewMsgID()
	date := time.Date(2025, 3, 4, 9, 58, 0, 0, time.FixedZone("", 3600))
	raw := []byte("From: Scanner <scan@dev.example>\r\nTo: inbox@app.example\r\nSubject: Scan 42\r\n\r\nhello\r\n")
	rawSum := sha256.Sum256(raw)
	f := &fixture{
		store: memblob.New(),
		raw:   raw,
		job: postern.WebhookJob{
			V:          postern.JobVersion,
			ID:         id,
			Route:      "scans",
			Recipients: []string{"inbox@app.example", "copy@app.example"},
			Created:    testNow.Add(-time.Minute),
			Envelope: postern.Envelope{
				V:      postern.EnvelopeVersion,
				ID:     id,
				Sender: "scan@dev.example",
				Recipients: []postern.Recipient{
					{Addr: "inbox@app.example"}, {Addr: "copy@app.example"}, {Addr: "other@elsewhere.example"},
				},
				Identity:   "scanner-2f",
				AuthMech:   "PLAIN",
				ClientIP:   "192.0.2.10",
				HELO:       "scanner.lan",
				Listener:   "submission",
				TLS:        &postern.TLSInfo{Version: "TLS1.3", Cipher: "TLS_AES_128_GCM_SHA256"},
				ReceivedAt: testNow.Add(-2 * time.Minute),
				Size:       int64(len(raw)),
				SHA256:     hex.EncodeToString(rawSum[:]),
			},
		},
		parsed: postern.Parsed{
			V:             postern.ParsedVersion,
			ID:            id,
			Headers:       []postern.Header{{Name: "From", Value: "Scanner <scan@dev.example>"}, {Name: "Subject", Value: "Scan 42"}},
			From:          []postern.Address{{Name: "Scanner", Address: "scan@dev.example"}},
			To:            []postern.Address{{Address: "inbox@app.example"}},
			Cc:            []postern.Address{{Address: "cc@app.example"}},
			ReplyTo:       []postern.Address{{Address: "replies@dev.example"}},
			Subject:       "Scan 42",
			Date:          &date,
			MessageID:     "<42@dev.example>",
			InReplyTo:     []string{"<41@dev.example>"},
			References:    []string{"<40@dev.example>", "<41@dev.example>"},
			Text:          "hello",
			HTML:          "<p>hello</p>",
			TextTruncated: true,
			Attachments: []postern.Attachment{
				{Filename: "small.txt", ContentType: "text/plain", Size: 3, SHA256: sumABC, Disposition: "attachment", Content: []byte("abc")},
				{Filename: "scan.pdf", ContentType: "application/pdf", DetectedType: "application/pdf", Size: 900000, SHA256: sumScan, ContentID: "<c1>", Disposition: "inline", Key: id.AttachmentKey(1)},
			},
			Errors: []postern.ParseError{{Name: "charset", Detail: "unknown charset x-foo", Severe: false}},
		},
	}
	f.put(t, id.RawKey(), raw)
	pj, err := json.Marshal(f.parsed)
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, id.ParsedKey(), pj)
	return f
}

func (f *fixture) put(t testing.TB, key string, b []byte) {
	t.Helper()
	if err := f.store.Put(t.Context(), key, bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
}

// jobBody is the queue message for the fixture's job.
func (f *fixture) jobBody(t testing.TB, attempt int) postern.Job {
	t.Helper()
	b, err := json.Marshal(f.job)
	if err != nil {
		t.Fatal(err)
	}
	return postern.Job{Body: b, Attempt: attempt}
}

// handler builds a Handler over f with one target for route "scans". The
// Handler has its own guarded clients, as in production; the target is
// allowed private addresses because httptest servers listen on loopback.
func (f *fixture) handler(t *testing.T, target Target, dsn Sender, now time.Time, opts ...Option) *Handler {
	t.Helper()
	target.AllowPrivate = true
	targets := func(route string) (Target, bool) {
		if route != "scans" {
			return Target{}, false
		}
		return target, true
	}
	opts = append([]Option{WithClock(func() time.Time { return now })}, opts...)
	return New(f.store, targets, nil, dsn, testLogger(t), opts...)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
