package parse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/postern/postern/internal/postern"
)

// inlineJob turns a submitted job into the form the gateway sends for a
// small message: the bytes inside, nothing in the store yet.
func inlineJob(t *testing.T, hs *harness, id postern.MsgID, env postern.Envelope, raw []byte) []byte {
	t.Helper()
	if err := hs.store.Delete(context.Background(), id.RawKey()); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: id, Envelope: env, Raw: raw})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A job that carries its message stores it at RawKey (where the webhook,
// relay, DSN and replay paths read it) and parses it without a GET.
func TestHandleInlineJobStoresRawFirst(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	m := buildMessage(t)
	id, env, _ := hs.submit(t, m.raw, "archive@example.com")
	body := inlineJob(t, hs, id, env, m.raw)
	var gets int
	hs.store.Err = func(op, key string) error {
		if op == "get" && key == id.RawKey() {
			gets++
		}
		return nil
	}
	if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if got := hs.store.object(t, id.RawKey()); !bytes.Equal(got, m.raw) {
		t.Errorf("stored raw.eml has %d bytes, want the job's %d", len(got), len(m.raw))
	}
	if typ := hs.store.ContentType(id.RawKey()); typ != "message/rfc822" {
		t.Errorf("raw.eml content type %q", typ)
	}
	if gets != 0 {
		t.Errorf("raw.eml read back %d times, want 0: the job has the bytes", gets)
	}
	p := decode[postern.Parsed](t, hs.store.object(t, id.ParsedKey()))
	if p.Subject != "Scan ready – Büro 3" || len(p.Attachments) != 3 {
		t.Errorf("parsed = subject %q, %d attachments", p.Subject, len(p.Attachments))
	}
	if len(hs.wh.sent()) != 1 {
		t.Errorf("webhook jobs = %d, want 1", len(hs.wh.sent()))
	}
}

// A store that fails the raw PUT makes the job temporary (it comes back),
// and nothing is routed before the message is in the store.
func TestHandleInlineJobStoreFailureIsTemporary(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	m := buildMessage(t)
	id, env, _ := hs.submit(t, m.raw, "archive@example.com")
	body := inlineJob(t, hs, id, env, m.raw)
	boom := errors.New("boom")
	hs.store.Err = func(op, key string) error {
		if op == "put" && key == id.RawKey() {
			return boom
		}
		return nil
	}
	err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1})
	if !errors.Is(err, boom) || postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, want a temporary error wrapping the store's", err)
	}
	if n := len(hs.wh.sent()); n != 0 {
		t.Errorf("%d webhook jobs sent before the message was stored", n)
	}
}

// Bytes that do not match the envelope's size and digest are refused for
// good: retrying cannot mend them, and the dead-letter queue keeps the job.
func TestHandleInlineJobDigestMismatchIsPermanent(t *testing.T) {
	t.Parallel()
	hs := newHarness(t, testRules)
	m := buildMessage(t)
	id, env, _ := hs.submit(t, m.raw, "archive@example.com")
	bad := bytes.Clone(m.raw)
	bad[len(bad)-3] ^= 1
	err := hs.h.Handle(context.Background(), postern.Job{Body: inlineJob(t, hs, id, env, bad), Attempt: 1})
	if err == nil || !postern.IsPermanent(err) {
		t.Fatalf("Handle = %v, want a permanent error", err)
	}
	if _, ok := hs.store.Bytes(id.RawKey()); ok {
		t.Error("the mismatched bytes were stored")
	}
}
