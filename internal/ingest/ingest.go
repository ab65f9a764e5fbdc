// Package ingest makes a received message durable and queued. The SMTP
// gateway answers 250 only when Accept returns nil.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
)

// Sender is the inbound queue, as ingest uses it.
type Sender interface {
	Send(ctx context.Context, body []byte, delay time.Duration) (string, error)
}

// Ingester stores and enqueues messages.
type Ingester struct {
	store blob.Store
	queue Sender
	log   *slog.Logger
}

// New returns an Ingester writing to store and queue.
func New(store blob.Store, queue Sender, log *slog.Logger) *Ingester {
	return &Ingester{store: store, queue: queue, log: log}
}

// Accept streams body into the store under env.ID, fills env.Size and
// env.SHA256, and enqueues a ParseJob. It returns nil only when both are
// durable: two requests on AWS (one S3 PUT, one SQS send).
//
// No envelope.json is written: the ParseJob carries the whole envelope, so
// once it is queued the envelope is as durable as the message, and the
// parse stage archives it inside parsed.json (postern.Parsed.Envelope);
// readers of envelope.json fall back to that. The local spool path
// (Spooled) still writes envelope.json, which costs nothing there.
//
// A message of up to ParallelMax bytes is read whole first (the S3
// uploader would hold it whole anyway: it is one part), so its size and
// digest are known before either request starts, and the PUT and the send
// run at once: the time to 250 is the slower of the two, not their sum.
// Should the PUT fail after its job was sent, the client hears 451, the
// object is deleted in case it landed after all (withdraw), and the parse
// stage, finding no raw message for a job that old, drops the job
// (parse.Handler, missingRawGrace). A larger message streams into the
// store first and is queued after.
//
// On error the client is told to send again; an object already written is
// an orphan the store's lifecycle expiry removes, and a retried message
// gets a new id.
//
// Errors from reading body (for example go-smtp's size limit) are returned
// wrapped, so the caller can still recognise them with errors.Is.
func (in *Ingester) Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error {
	start := time.Now()
	cr := &countingReader{r: body, h: sha256.New()}
	var head bytes.Buffer
	if env.DeclSize > 0 && env.DeclSize <= ParallelMax {
		head.Grow(int(env.DeclSize) + 4<<10) // the Received header comes on top
	}
	if _, err := head.ReadFrom(io.LimitReader(cr, ParallelMax+1)); err != nil {
		return fmt.Errorf("store raw %s: %w", env.ID, err)
	}
	if head.Len() > ParallelMax {
		return in.acceptStreamed(ctx, env, cr, &head, start)
	}
	_, jb, err := seal(env, cr)
	if err != nil {
		return err
	}
	var putErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		putErr = in.store.Put(ctx, env.ID.RawKey(), bytes.NewReader(head.Bytes()), &blob.PutOptions{ContentType: "message/rfc822"})
	}()
	_, sendErr := in.queue.Send(ctx, jb, 0)
	<-done
	if putErr != nil {
		if sendErr == nil {
			in.withdraw(ctx, env)
		}
		return fmt.Errorf("store raw %s: %w", env.ID, putErr)
	}
	if sendErr != nil {
		return fmt.Errorf("enqueue parse job %s: %w", env.ID, sendErr)
	}
	logAccepted(ctx, in.log, env, start)
	return nil
}

// withdraw deletes the raw message of a refused message whose job was
// sent: a PUT that reported failure may have landed all the same (an
// error after the write, a timeout), and the parse stage must then find
// nothing, or the client would get a copy of a message it was told to send
// again. Best effort: a delete that fails is logged.
func (in *Ingester) withdraw(ctx context.Context, env *postern.Envelope) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := in.store.Delete(dctx, env.ID.RawKey()); err != nil && !errors.Is(err, blob.ErrNotFound) {
		in.log.LogAttrs(ctx, slog.LevelWarn, "refused message's raw copy not withdrawn: it may be delivered as well as the sender's retry",
			slog.String("msg_id", env.ID.String()), slog.String("stage", "gateway"), slog.String("error", err.Error()))
	}
}

// ParallelMax is the largest message Accept reads whole before storing it:
// S3's smallest multipart part (s3blob.MinPartSize), which the uploader
// holds in memory for any object up to that size anyway.
const ParallelMax = 5 << 20

// acceptStreamed stores a large message as it is read (head, then the rest
// of cr), then queues its job: its digest is known only at the end.
func (in *Ingester) acceptStreamed(ctx context.Context, env *postern.Envelope, cr *countingReader, head *bytes.Buffer, start time.Time) error {
	if err := in.store.Put(ctx, env.ID.RawKey(), io.MultiReader(head, cr), &blob.PutOptions{ContentType: "message/rfc822"}); err != nil {
		return fmt.Errorf("store raw %s: %w", env.ID, err)
	}
	_, jb, err := seal(env, cr)
	if err != nil {
		return err
	}
	if _, err := in.queue.Send(ctx, jb, 0); err != nil {
		return fmt.Errorf("enqueue parse job %s: %w", env.ID, err)
	}
	logAccepted(ctx, in.log, env, start)
	return nil
}

// seal fills the envelope's size and digest from what cr read and encodes
// the envelope and its ParseJob.
func seal(env *postern.Envelope, cr *countingReader) (envelope, job []byte, err error) {
	env.Size = cr.n
	env.SHA256 = hex.EncodeToString(cr.h.Sum(nil))
	env.V = postern.EnvelopeVersion
	envelope, err = json.Marshal(env)
	if err != nil {
		return nil, nil, fmt.Errorf("encode envelope %s: %w", env.ID, err)
	}
	job, err = json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: env.ID, Envelope: *env})
	if err != nil {
		return nil, nil, fmt.Errorf("encode parse job %s: %w", env.ID, err)
	}
	return envelope, job, nil
}

func logAccepted(ctx context.Context, log *slog.Logger, env *postern.Envelope, start time.Time) {
	log.LogAttrs(ctx, slog.LevelInfo, "message accepted",
		slog.String("msg_id", env.ID.String()), slog.String("stage", "gateway"),
		slog.Int64("size", env.Size), slog.Int("rcpts", len(env.Recipients)),
		slog.String("identity", env.Identity), slog.Int64("durable_ms", time.Since(start).Milliseconds()))
}

type countingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.h.Write(p[:n])
		c.n += int64(n)
	}
	return n, err
}
