package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	st, _, q := setupIn(t, t.TempDir())
	return st, q
}

// setupIn opens a store and an inbound queue under dir, and the queue's
// file (the spool's mover keeps its marks there).
func setupIn(t *testing.T, dir string) (*fsblob.Store, *fsqueue.DB, *fsqueue.Queue) {
	t.Helper()
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
	return st, db, q
}

func newEnv() *postern.Envelope {
	return &postern.Envelope{ID: postern.NewMsgID(), Sender: "a@lan", Recipients: []postern.Recipient{{Addr: "b@app.test"}}}
}

// receiveJob returns the one ParseJob on q.
func receiveJob(t *testing.T, q *fsqueue.Queue) postern.ParseJob {
	t.Helper()
	msgs, err := q.Receive(t.Context(), 10, time.Minute, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("queue has %d jobs, %v", len(msgs), err)
	}
	var job postern.ParseJob
	if err := json.Unmarshal(msgs[0].Body, &job); err != nil {
		t.Fatal(err)
	}
	return job
}

// A small message travels in its job; a large one (or any, with inlining
// off) goes to the store and the job names it.
func TestAcceptStoresAndQueues(t *testing.T) {
	t.Parallel()
	small := []byte("Subject: hi\r\n\r\nhello\r\n")
	large := bytes.Repeat([]byte("0123456789abcdef\r\n"), postern.MaxInlineRaw/18+1)
	on := []Option{InlineUpTo(postern.MaxInlineRaw)}
	for _, tc := range []struct {
		name   string
		body   []byte
		opts   []Option
		inline bool
	}{
		{"small inline", small, on, true},
		{"exactly the limit inline", large[:postern.MaxInlineRaw], on, true},
		{"one byte over the limit stored", large[:postern.MaxInlineRaw+1], on, false},
		{"small with inlining off (the default) stored", small, nil, false},
		{"a limit above the maximum is the maximum", large[:postern.MaxInlineRaw+1], []Option{InlineUpTo(1 << 30)}, false},
		{"empty stored", []byte{}, on, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, q := setup(t)
			in := New(st, q, slog.New(slog.DiscardHandler), tc.opts...)
			env := newEnv()
			if err := in.Accept(t.Context(), env, bytes.NewReader(tc.body)); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(tc.body)
			if env.Size != int64(len(tc.body)) || env.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("size/hash = %d %s", env.Size, env.SHA256)
			}
			job := receiveJob(t, q)
			if job.ID != env.ID || job.V != postern.JobVersion || job.Envelope.Sender != "a@lan" {
				t.Errorf("job = %+v", job)
			}
			if e := job.Envelope; e.ID != env.ID || e.SHA256 != env.SHA256 || e.Size != env.Size || e.V != postern.EnvelopeVersion {
				t.Errorf("job envelope = %+v, want the sealed envelope", e)
			}
			_, statErr := st.Stat(t.Context(), env.ID.RawKey())
			if tc.inline {
				if !bytes.Equal(job.Raw, tc.body) {
					t.Errorf("job.Raw holds %d bytes, want the message's %d", len(job.Raw), len(tc.body))
				}
				if !errors.Is(statErr, blob.ErrNotFound) {
					t.Errorf("raw.eml: %v, want not found (the job carries the message)", statErr)
				}
			} else {
				if job.Raw != nil {
					t.Errorf("job.Raw holds %d bytes, want none", len(job.Raw))
				}
				rc, err := st.Get(t.Context(), env.ID.RawKey())
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(rc)
				rc.Close()
				if !bytes.Equal(raw, tc.body) {
					t.Errorf("raw.eml holds %d bytes, want %d", len(raw), len(tc.body))
				}
			}
			// The job is the envelope's durable copy: no envelope.json.
			if _, err := st.Stat(t.Context(), env.ID.EnvelopeKey()); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("envelope.json: %v, want not found (the ParseJob carries the envelope)", err)
			}
		})
	}
}

// A job that would pass the queue's size limit with the message inside (a
// long recipient list) stores the message instead of failing.
func TestAcceptStoresWhenTheJobWouldBeTooLarge(t *testing.T) {
	t.Parallel()
	st, q := setup(t)
	env := newEnv()
	for i := range 2000 {
		env.Recipients = append(env.Recipients, postern.Recipient{Addr: fmt.Sprintf("someone-with-a-long-name-%04d@applications.example.test", i)})
	}
	body := bytes.Repeat([]byte("x"), postern.MaxInlineRaw-100)
	if err := New(st, q, slog.New(slog.DiscardHandler), InlineUpTo(postern.MaxInlineRaw)).Accept(t.Context(), env, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	job := receiveJob(t, q)
	if job.Raw != nil {
		t.Errorf("job carries the message (%d bytes), want it stored", len(job.Raw))
	}
	if _, err := st.Stat(t.Context(), env.ID.RawKey()); err != nil {
		t.Errorf("raw.eml: %v", err)
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

// Accept makes one queue send for a small message and one store write
// then one send for a large one: the AWS requests before 250.
func TestAcceptRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size int
		puts int
	}{{100, 0}, {postern.MaxInlineRaw + 1, 1}} {
		st, q := setup(t)
		cs, cq := &countingStore{Store: st}, &countingQueue{Sender: q}
		env := newEnv()
		if err := New(cs, cq, slog.New(slog.DiscardHandler), InlineUpTo(postern.MaxInlineRaw)).Accept(t.Context(), env, bytes.NewReader(make([]byte, tc.size))); err != nil {
			t.Fatal(err)
		}
		if len(cs.puts) != tc.puts || tc.puts == 1 && cs.puts[0] != env.ID.RawKey() || cq.sends != 1 {
			t.Errorf("%d bytes: puts %q, sends %d; want %d put of %s and one send", tc.size, cs.puts, cq.sends, tc.puts, env.ID.RawKey())
		}
	}
}

// A failure at any step leaves no job on the queue: no stage will ever see
// a message the client was told to retry.
func TestFailureQueuesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		size   int
		suffix string
		qerr   error
	}{
		{"raw put fails", postern.MaxInlineRaw + 1, "raw.eml", nil},
		{"enqueue fails after the put", postern.MaxInlineRaw + 1, "", errors.New("injected queue failure")},
		{"inline enqueue fails", 100, "", errors.New("injected queue failure")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, q := setup(t)
			var sender Sender = q
			if tc.qerr != nil {
				sender = failingQueue{tc.qerr}
			}
			in := New(failingStore{st, tc.suffix}, sender, slog.New(slog.DiscardHandler), InlineUpTo(postern.MaxInlineRaw))
			if err := in.Accept(t.Context(), newEnv(), bytes.NewReader(make([]byte, tc.size))); err == nil {
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
