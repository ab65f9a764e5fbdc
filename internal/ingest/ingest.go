// Package ingest makes a received message durable and queued. The SMTP
// gateway answers 250 only when Accept returns nil.
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
	store  blob.Store
	queue  Sender
	log    *slog.Logger
	now    func() time.Time // the clock durable_ms is read from; tests set it
	inline int              // messages up to this many bytes travel in the job
}

// Option changes an Ingester.
type Option func(*Ingester)

// InlineUpTo sets the size up to which a message travels inside its
// ParseJob instead of the store (0, the default, never; at most
// postern.MaxInlineRaw). The AWS backend turns it on: there it saves a
// request before 250. On one machine the spool is the fast path, and a
// queue of message bodies would only move the write.
func InlineUpTo(n int) Option {
	return func(in *Ingester) { in.inline = min(max(n, 0), postern.MaxInlineRaw) }
}

// New returns an Ingester writing to store and queue.
func New(store blob.Store, queue Sender, log *slog.Logger, opts ...Option) *Ingester {
	in := &Ingester{store: store, queue: queue, log: log, now: time.Now}
	for _, o := range opts {
		o(in)
	}
	return in
}

// Accept makes the message durable and queued, fills env.Size and
// env.SHA256, and returns nil only when both are done.
//
// A message of at most the inline size (InlineUpTo; 128 KiB on AWS: most
// device mail) goes into its ParseJob: one queue send makes message and envelope durable
// together, one request before 250 on AWS, and the parse stage writes it
// to the store. A larger one is streamed to the store under env.ID and
// then its ParseJob is sent: two requests.
//
// No envelope.json is written: the ParseJob carries the whole envelope, so
// once it is queued the envelope is as durable as the message, and the
// parse stage archives it inside parsed.json (postern.Parsed.Envelope);
// readers of envelope.json fall back to that. The local spool path
// (Spooled) still writes envelope.json, which costs nothing there.
//
// For a large message the PUT comes first and the send after it, never
// both at once. Sending the job while the PUT is in flight (tried: it cut
// the time to 250 only from about 1.4x one PUT to 1.2-1.3x on the
// stand-ins) hands the parse stage jobs before their objects exist, which
// SQS delivers in milliseconds: each such job costs a failed GET, a
// rescheduling and a retry's delay; and while S3 is down every refused
// message would leave a job behind, for a message the sender was told to
// send again.
//
// On error nothing has been queued, so no stage will ever see the message;
// an object already written is an orphan the store's lifecycle expiry
// removes, and a retried message gets a new id.
//
// Errors from reading body (for example go-smtp's size limit) are returned
// wrapped, so the caller can still recognise them with errors.Is.
func (in *Ingester) Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error {
	h := sha256.New()
	cr := &countingReader{r: body, h: h, now: in.now}
	if in.inline > 0 {
		// One byte more than the limit tells a message that fits from one
		// that does not.
		head, err := io.ReadAll(io.LimitReader(blob.ContextReader(ctx, cr), int64(in.inline)+1))
		if err != nil {
			return fmt.Errorf("read message %s: %w", env.ID, err)
		}
		if len(head) <= in.inline && len(head) > 0 { // omitempty would drop an empty Raw
			if job, err := seal(env, cr, head); err != nil {
				return err
			} else if len(job) <= postern.MaxJobBytes {
				return in.send(ctx, env, cr, job)
			}
			// Too long a job (a long recipient list): store it as a large one.
		}
		body = io.MultiReader(bytes.NewReader(head), cr)
	} else {
		body = cr
	}
	if err := in.store.Put(ctx, env.ID.RawKey(), body, &blob.PutOptions{ContentType: "message/rfc822"}); err != nil {
		return fmt.Errorf("store raw %s: %w", env.ID, err)
	}
	job, err := seal(env, cr, nil)
	if err != nil {
		return err
	}
	return in.send(ctx, env, cr, job)
}

func (in *Ingester) send(ctx context.Context, env *postern.Envelope, cr *countingReader, job []byte) error {
	if _, err := in.queue.Send(ctx, job, 0); err != nil {
		return fmt.Errorf("enqueue parse job %s: %w", env.ID, err)
	}
	logAccepted(ctx, in.log, env, cr, in.now())
	return nil
}

// seal fills the envelope's size and digest from what cr read and encodes
// its ParseJob, with raw inside unless it is nil.
func seal(env *postern.Envelope, cr *countingReader, raw []byte) ([]byte, error) {
	if cr.eof.IsZero() { // a store that stopped reading right at the end
		cr.eof = cr.now()
	}
	env.Size = cr.n
	env.SHA256 = ""
	if cr.h != nil {
		env.SHA256 = hex.EncodeToString(cr.h.Sum(nil))
	}
	env.BareLF = cr.bareLF
	env.V = postern.EnvelopeVersion
	job, err := json.Marshal(postern.ParseJob{V: postern.JobVersion, ID: env.ID, Envelope: *env, Raw: raw})
	if err != nil {
		return nil, fmt.Errorf("encode parse job %s: %w", env.ID, err)
	}
	return job, nil
}

// logAccepted logs the acceptance. durable_ms counts from the end of DATA
// (the body's EOF, the client's final ".") to now: the time the gateway
// itself needs to make the message safe, which a slow client's upload would
// otherwise hide.
func logAccepted(ctx context.Context, log *slog.Logger, env *postern.Envelope, cr *countingReader, now time.Time) {
	log.LogAttrs(ctx, slog.LevelInfo, "message accepted",
		slog.String("msg_id", env.ID.String()), slog.String("stage", "gateway"),
		slog.Int64("size", env.Size), slog.Int("rcpts", len(env.Recipients)),
		slog.String("identity", env.Identity), slog.Int64("durable_ms", now.Sub(cr.eof).Milliseconds()))
}

type countingReader struct {
	r io.Reader
	h hash.Hash // nil once hashUpTo is passed
	n int64
	// hashUpTo, if positive, is the most bytes h takes: past it the
	// digest is left to the spool's mover (see CompleteEnvelope).
	hashUpTo int64
	now      func() time.Time
	eof      time.Time // when r first said io.EOF: the end of DATA

	bareLF bool // a line ended by LF alone was read
	last   byte // the last byte read, for an LF at the start of a read
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		if c.hashUpTo > 0 && c.n > c.hashUpTo {
			c.h = nil
		}
		if c.h != nil {
			c.h.Write(p[:n])
		}
		if !c.bareLF {
			c.bareLF = hasBareLF(c.last, p[:n])
		}
		c.last = p[n-1]
	}
	if err == io.EOF && c.eof.IsZero() {
		c.eof = c.now()
	}
	return n, err
}

// hasBareLF reports whether b holds an LF not preceded by CR; prev is the
// byte before b (0 at the start).
func hasBareLF(prev byte, b []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return false
		}
		i += j
		if i == 0 && prev != '\r' || i > 0 && b[i-1] != '\r' {
			return true
		}
		i++
	}
}
