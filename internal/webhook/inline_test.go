package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
)

// A job that carries the parsed form is delivered from it, without reading
// parsed.json, and the receiver gets the same payload as from the store.
func TestInlineParsedFormNeedsNoStoreRead(t *testing.T) {
	t.Parallel()
	byRef := newFixture(t)
	rec := &recorder{}
	srv := serve(t, rec)
	target := Target{URL: srv.URL + "/hook", Secrets: [][]byte{testSecret}}
	if err := byRef.handler(t, target, &fakeSender{}, testNow).Handle(t.Context(), byRef.jobBody(t, 1)); err != nil {
		t.Fatalf("Handle by reference: %v", err)
	}

	inline := byRef
	pj, err := json.Marshal(inline.parsed)
	if err != nil {
		t.Fatal(err)
	}
	inline.job.Parsed = pj
	if err := inline.store.Delete(t.Context(), inline.job.ID.ParsedKey()); err != nil {
		t.Fatal(err)
	}
	if err := inline.handler(t, target, &fakeSender{}, testNow).Handle(t.Context(), inline.jobBody(t, 1)); err != nil {
		t.Fatalf("Handle with the parsed form inline and no parsed.json: %v", err)
	}
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if !bytes.Equal(reqs[0].body, reqs[1].body) {
		t.Errorf("payloads differ:\nby reference %s\ninline       %s", reqs[0].body, reqs[1].body)
	}
	if err := Verify([][]byte{testSecret}, reqs[1].header, reqs[1].body, time.Minute, testNow); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// An inline copy that does not decode is not trusted: parsed.json decides.
func TestUndecodableInlineParsedFormFallsBackToStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.job.Parsed = json.RawMessage(`{"v":"not a number"}`)
	rec := &recorder{}
	srv := serve(t, rec)
	if err := f.handler(t, Target{URL: srv.URL + "/hook", Secrets: [][]byte{testSecret}}, &fakeSender{}, testNow).Handle(t.Context(), f.jobBody(t, 1)); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	var ev ReceivedEvent
	if err := json.Unmarshal(reqs[0].body, &ev); err != nil || ev.Data.Subject != "Scan 42" {
		t.Errorf("payload subject %q (%v), want the stored parsed form's", ev.Data.Subject, err)
	}
}

// countingGets counts the store reads a stage makes.
type countingGets struct {
	blob.Store
	mu   sync.Mutex
	gets int
}

func (c *countingGets) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Store.Get(ctx, key)
}

// A raw payload is read from the store once when it fits in memory, and
// twice (sign, then send) only when it is larger; the receiver gets the
// same bytes, correctly signed, either way.
func TestRawPayloadReadsSmallMessageOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		size int
		gets int
	}{{"small", 0, 1}, {"over the in-memory bound", rawInMemoryMax + 1, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.size > 0 {
				f.raw = append(f.raw, bytes.Repeat([]byte("x"), tc.size)...)
				f.put(t, f.job.ID.RawKey(), f.raw)
			}
			rec := &recorder{}
			srv := serve(t, rec)
			store := &countingGets{Store: f.store}
			target := Target{URL: srv.URL, Secrets: [][]byte{testSecret}, Payload: PayloadRaw, AllowPrivate: true}
			h := New(store, func(string) (Target, bool) { return target, true }, nil, &fakeSender{}, testLogger(t),
				WithClock(func() time.Time { return testNow }))
			if err := h.Handle(t.Context(), f.jobBody(t, 1)); err != nil {
				t.Fatal(err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 || !bytes.Equal(reqs[0].body, f.raw) {
				t.Fatalf("%d requests, want 1 with the %d raw bytes", len(reqs), len(f.raw))
			}
			if err := Verify([][]byte{testSecret}, reqs[0].header, reqs[0].body, time.Minute, testNow); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if store.gets != tc.gets {
				t.Errorf("%d store reads, want %d", store.gets, tc.gets)
			}
		})
	}
}
