// Package ingest makes a received message durable and queued: the raw bytes
// and the envelope sidecar go to the store, then a ParseJob to the inbound
// queue. The SMTP gateway answers 250 only when Accept returns nil.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// env.SHA256, stores the envelope and enqueues a ParseJob. It returns nil
// only when all three are durable. On error nothing has been queued, so no
// stage will ever see the message; objects already written are orphans the
// store's lifecycle expiry removes, and a retried message gets a new id.
//
// Errors from reading body (for example go-smtp's size limit) are returned
// wrapped, so the caller can still recognise them with errors.Is.
func (in *Ingester) Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error {
	start := time.Now()
	h := sha256.New()
	cr := &countingReader{r: body, h: h}
	if err := in.store.Put(ctx, env.ID.RawKey(), cr, &blob.PutOptions{ContentType: "message/rfc822"}); err != nil {
		return fmt.Errorf("store raw %s: %w", env.ID, err)
	}
	eb, jb, err := seal(env, cr)
	if err != nil {
		return err
	}
	if err := in.store.Put(ctx, env.ID.EnvelopeKey(), bytes.NewReader(eb), &blob.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("store envelope %s: %w", env.ID, err)
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
