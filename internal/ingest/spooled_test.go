package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/spool"
)

// An envelope too large for one spool frame (hostile recipient lists beyond
// RFC sizes) is refused before 250 with an error the gateway answers 451,
// and the next message is accepted.
func TestSpooledRefusesAnEnvelopeTooLargeForAFrame(t *testing.T) {
	t.Parallel()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	in := NewSpooled(sp, slog.New(slog.DiscardHandler))
	env := &postern.Envelope{ID: postern.NewMsgID(), Sender: "a@lan", ReceivedAt: time.Now()}
	long := strings.Repeat("x", 2000) + "@example.com"
	for range 1000 {
		env.Recipients = append(env.Recipients, postern.Recipient{Addr: long, ORCPT: "rfc822;" + long})
	}
	err = in.Accept(context.Background(), env, strings.NewReader("Subject: x\r\n\r\nx\r\n"))
	if !errors.Is(err, spool.ErrTooLarge) {
		t.Fatalf("Accept = %v, want spool.ErrTooLarge", err)
	}
	ok := &postern.Envelope{ID: postern.NewMsgID(), Sender: "a@lan", Recipients: []postern.Recipient{{Addr: "b@app.test"}}, ReceivedAt: time.Now()}
	if err := in.Accept(context.Background(), ok, strings.NewReader("Subject: y\r\n\r\ny\r\n")); err != nil {
		t.Fatalf("the next message: %v", err)
	}
}

// With a spool whose mover completes envelopes, the front door hashes
// messages of up to hashUpTo bytes and the mover the rest: either way
// envelope.json and the parse job carry the SHA-256 of the stored bytes.
// Without one, Accept hashes every message itself.
func TestSpooledDigestIsCompleteEitherWay(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1000, hashUpTo, hashUpTo + 1, 300 << 10, 1 << 20}
	for _, completes := range []bool{true, false} {
		t.Run(map[bool]string{true: "mover", false: "front door"}[completes], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			st, db, q := setupIn(t, dir)
			opts := spool.Options{CheckpointEvery: 20 * time.Millisecond}
			if completes {
				opts.Complete = CompleteEnvelope
			}
			sp, err := spool.Open(filepath.Join(dir, "spool"), opts)
			if err != nil {
				t.Fatal(err)
			}
			mv := spool.NewMover(sp, st, q, db)
			if err := mv.Replay(t.Context()); err != nil {
				t.Fatal(err)
			}
			mv.Start()
			t.Cleanup(func() { mv.Stop(context.Background()); sp.Close() })

			in := NewSpooled(sp, slog.New(slog.DiscardHandler))
			want := map[postern.MsgID]string{}
			for _, n := range sizes {
				body := bytes.Repeat([]byte("0123456789abcde\n"), n/16+1)[:n]
				sum := sha256.Sum256(body)
				env := newEnv()
				if err := in.Accept(t.Context(), env, bytes.NewReader(body)); err != nil {
					t.Fatal(err)
				}
				want[env.ID] = hex.EncodeToString(sum[:])
				if left := completes && n > hashUpTo; (env.SHA256 == "") != left {
					t.Errorf("%d bytes: digest %q after Accept; left to the mover: %v", n, env.SHA256, left)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for len(want) > 0 && time.Now().Before(deadline) {
				msgs, err := q.Receive(t.Context(), 10, time.Minute, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range msgs {
					var job postern.ParseJob
					if err := json.Unmarshal(m.Body, &job); err != nil {
						t.Fatal(err)
					}
					rc, err := st.Get(t.Context(), job.ID.EnvelopeKey())
					if err != nil {
						t.Fatal(err)
					}
					var env postern.Envelope
					err = json.NewDecoder(rc).Decode(&env)
					rc.Close()
					if err != nil {
						t.Fatal(err)
					}
					if env.SHA256 != want[job.ID] || job.Envelope.SHA256 != want[job.ID] || env.Size != job.Envelope.Size {
						t.Errorf("message %s of %d bytes: envelope.json digest %q, job's %q, want %q",
							job.ID, env.Size, env.SHA256, job.Envelope.SHA256, want[job.ID])
					}
					delete(want, job.ID)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if len(want) > 0 {
				t.Fatalf("%d messages never queued", len(want))
			}
		})
	}
}

// An envelope that has its digest (a small message, or a log an earlier
// version wrote) passes through unchanged, without hashing.
func TestCompleteEnvelopeKeepsADigest(t *testing.T) {
	env := newEnv()
	env.SHA256 = strings.Repeat("ab", 32)
	eb, _ := json.Marshal(env)
	jb, _ := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: env.ID, Envelope: *env})
	e2, j2, err := CompleteEnvelope(eb, jb, func() []byte { t.Fatal("hashed a message that had its digest"); return nil })
	if err != nil || !bytes.Equal(e2, eb) || !bytes.Equal(j2, jb) {
		t.Fatalf("CompleteEnvelope = %s, %s, %v; want the input", e2, j2, err)
	}
	// A job that belongs to another message is refused, not completed.
	env.SHA256 = ""
	eb, _ = json.Marshal(env)
	other := newEnv()
	jb, _ = json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: other.ID, Envelope: *other})
	if _, _, err := CompleteEnvelope(eb, jb, func() []byte { return make([]byte, 32) }); err == nil {
		t.Fatal("completed an envelope with another message's job")
	}
}
