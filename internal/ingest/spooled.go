package ingest

import (
	"context"
	"crypto/sha256"
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

// NewSpooled returns an ingester writing to s.
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
