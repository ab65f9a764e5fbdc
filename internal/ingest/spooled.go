package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/spool"
)

// Spooled makes messages durable in the one-machine gateway's log (see
// package spool): raw bytes, envelope and ParseJob are appended together and
// Accept returns once a shared flush covers them. The spool's mover puts
// them into the store and the inbound queue afterwards.
type Spooled struct {
	spool *spool.Spool
	log   *slog.Logger
	now   func() time.Time // the clock durable_ms is read from; tests set it
}

// hashUpTo is the largest message the front door hashes itself when the
// spool's mover completes envelopes: below it hashing costs less than the
// mover's decoding and encoding of the envelope to add the digest, above it
// the hash is the front door's largest cost after go-smtp's reader (8 to 9%
// of its CPU at 1 MiB). A larger message has hashed hashUpTo bytes for
// nothing.
const hashUpTo = 64 << 10

// NewSpooled returns an ingester writing to s. Open s with
// Options.Complete set to CompleteEnvelope to have its mover hash messages
// over hashUpTo bytes instead.
func NewSpooled(s *spool.Spool, log *slog.Logger) *Spooled {
	return &Spooled{spool: s, log: log, now: time.Now}
}

// Accept has Ingester.Accept's contract.
func (in *Spooled) Accept(ctx context.Context, env *postern.Envelope, body io.Reader) error {
	m, err := in.spool.Begin(env.ID.String())
	if err != nil {
		return err
	}
	cr := &countingReader{r: body, h: sha256.New(), now: in.now}
	if in.spool.Completes() {
		// The mover reads every byte again from the log and hashes what
		// this leaves (CompleteEnvelope), off the path to 250.
		cr.hashUpTo = hashUpTo
	}
	// The message reads straight into the spool's chunk buffer (Msg.ReadFrom).
	if _, err := io.Copy(m, blob.ContextReader(ctx, cr)); err != nil {
		m.Abort()
		return fmt.Errorf("spool raw %s: %w", env.ID, err)
	}
	jb, err := seal(env, cr, nil)
	if err != nil {
		m.Abort()
		return err
	}
	// The spool's commit keeps the envelope sidecar too: its mover writes
	// envelope.json, which the direct path leaves to the job.
	eb, err := json.Marshal(env)
	if err != nil {
		m.Abort()
		return fmt.Errorf("encode envelope %s: %w", env.ID, err)
	}
	if err := m.Commit(ctx, eb, jb); err != nil {
		return fmt.Errorf("spool %s: %w", env.ID, err)
	}
	logAccepted(ctx, in.log, env, cr, in.now())
	return nil
}

// emptyDigest is how an envelope left for the mover to hash reads.
var emptyDigest = []byte(`"sha256":""`)

// CompleteEnvelope is the spool's Options.Complete for this ingester's
// commits: it adds the digest Accept left out to the envelope and its
// parse job. An envelope with its digest (a smaller message, or a log an
// earlier version wrote) comes back as it is.
func CompleteEnvelope(envelope, job []byte, digest func() []byte) ([]byte, []byte, error) {
	// json.Marshal writes sha256 always; an escaped string cannot hold
	// this text, so without it the digest is there.
	if !bytes.Contains(envelope, emptyDigest) {
		return envelope, job, nil
	}
	var env postern.Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return nil, nil, fmt.Errorf("decode envelope: %w", err)
	}
	if env.SHA256 != "" {
		return envelope, job, nil
	}
	var pj postern.ParseJob
	if err := json.Unmarshal(job, &pj); err != nil {
		return nil, nil, fmt.Errorf("decode parse job: %w", err)
	}
	if pj.ID != env.ID || pj.Envelope.SHA256 != "" {
		return nil, nil, fmt.Errorf("parse job %s does not match envelope %s", pj.ID, env.ID)
	}
	env.SHA256 = hex.EncodeToString(digest())
	pj.Envelope.SHA256 = env.SHA256
	eb, err := json.Marshal(env)
	if err != nil {
		return nil, nil, fmt.Errorf("encode envelope %s: %w", env.ID, err)
	}
	jb, err := json.Marshal(pj)
	if err != nil {
		return nil, nil, fmt.Errorf("encode parse job %s: %w", env.ID, err)
	}
	return eb, jb, nil
}
