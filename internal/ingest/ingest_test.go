package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/fsblob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/queue/fsqueue"
)

// failingStore wraps the real local store and fails Puts whose key has the
// given suffix, as a full disk or an S3 outage would.
type failingStore struct {
	blob.Store
	failSuffix string
}

func (f failingStore) Put(ctx context.Context, key string, r io.Reader, o *blob.PutOptions) error {
	if f.failSuffix != "" && strings.HasSuffix(key, f.failSuffix) {
		io.Copy(io.Discard, io.LimitReader(r, 10))
		return errors.New("injected store failure")
	}
	return f.Store.Put(ctx, key, r, o)
}

type failingQueue struct{ err error }

func (f failingQueue) Send(context.Context, []byte, time.Duration) (string, error) { return "", f.err }

func setup(t *testing.T) (*fsblob.Store, *fsqueue.Queue) {
	t.Helper()
	dir := t.TempDir()
	st, err := fsblob.New(filepath.Join(dir, "store"), fsblob.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := fsqueue.Open(filepath.Join(dir, "q.db"), fsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q, err := db.Queue("inbound", fsqueue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return st, q
}

func newEnv() *postern.Envelope {
	return &postern.Envelope{ID: postern.NewMsgID(), Sender: "a@lan", Recipients: []postern.Recipient{{Addr: "b@app.test"}}}
}

func TestAcceptStoresAndQueues(t *testing.T) {
	t.Parallel()
	st, q := setup(t)
	in := New(st, q, slog.New(slog.DiscardHandler))
	env := newEnv()
	body := []byte("Subject: hi\r\n\r\nhello\r\n")
	if err := in.Accept(t.Context(), env, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if env.Size != int64(len(body)) || env.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("size/hash = %d %s", env.Size, env.SHA256)
	}
	rc, err := st.Get(t.Context(), env.ID.RawKey())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(raw, body) {
		t.Errorf("raw = %q", raw)
	}
	// The job is the envelope's durable copy: no envelope.json on this path.
	if _, err := st.Stat(t.Context(), env.ID.EnvelopeKey()); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("envelope.json: %v, want not found (the ParseJob carries the envelope)", err)
	}
	msgs, err := q.Receive(t.Context(), 10, time.Minute, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("queue has %d jobs, %v", len(msgs), err)
	}
	var job postern.ParseJob
	if err := json.Unmarshal(msgs[0].Body, &job); err != nil || job.ID != env.ID || job.V != postern.JobVersion || job.Envelope.Sender != "a@lan" {
		t.Errorf("job = %+v, %v", job, err)
	}
	if e := job.Envelope; e.ID != env.ID || e.SHA256 != env.SHA256 || e.Size != env.Size || e.V != postern.EnvelopeVersion {
		t.Errorf("job envelope = %+v, want the sealed envelope", e)
	}
}

// countingStore counts Puts, so a test can hold Accept to its request
// budget (each Put is an S3 request on AWS).
type countingStore struct {
	blob.Store
	puts []string
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, o *blob.PutOptions) error {
	c.puts = append(c.puts, key)
	return c.Store.Put(ctx, key, r, o)
}

type countingQueue struct {
	Sender
	sends int
}

func (c *countingQueue) Send(ctx context.Context, body []byte, d time.Duration) (string, error) {
	c.sends++
	return c.Sender.Send(ctx, body, d)
}

// Accept makes one store write and one queue send, in that order of
// durability: two AWS requests before 250.
func TestAcceptMakesOnePutAndOneSend(t *testing.T) {
	t.Parallel()
	st, q := setup(t)
	cs, cq := &countingStore{Store: st}, &countingQueue{Sender: q}
	env := newEnv()
	if err := New(cs, cq, slog.New(slog.DiscardHandler)).Accept(t.Context(), env, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if len(cs.puts) != 1 || cs.puts[0] != env.ID.RawKey() || cq.sends != 1 {
		t.Errorf("puts %q, sends %d; want only %s and one send", cs.puts, cq.sends, env.ID.RawKey())
	}
}

// A failure at any step leaves no job on the queue: no stage will ever see
// a message the client was told to retry.
func TestFailureQueuesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		suffix string
		qerr   error
	}{
		{"raw put fails", "raw.eml", nil},
		{"enqueue fails", "", errors.New("injected queue failure")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, q := setup(t)
			var sender Sender = q
			if tc.qerr != nil {
				sender = failingQueue{tc.qerr}
			}
			in := New(failingStore{st, tc.suffix}, sender, slog.New(slog.DiscardHandler))
			if err := in.Accept(t.Context(), newEnv(), strings.NewReader("Subject: x\r\n\r\nx\r\n")); err == nil {
				t.Fatal("Accept succeeded despite the failure")
			}
			s, err := q.Stats(t.Context())
			if err != nil || s.Visible+s.InFlight+s.Delayed != 0 {
				t.Fatalf("queue after failure: %+v, %v", s, err)
			}
		})
	}
}

// A body read error (the client's connection dying, the size limit) fails
// Accept with that error still recognisable, and stores nothing.
func TestBodyErrorIsReturned(t *testing.T) {
	t.Parallel()
	st, q := setup(t)
	in := New(st, q, slog.New(slog.DiscardHandler))
	sentinel := errors.New("too big")
	env := newEnv()
	err := in.Accept(t.Context(), env, io.MultiReader(strings.NewReader("Subject: x\r\n"), errReader{sentinel}))
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want it to wrap the body error", err)
	}
	if _, err := st.Stat(t.Context(), env.ID.RawKey()); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("partial raw message visible: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
