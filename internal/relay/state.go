package relay

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
	"time"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
)

// stateVersion is the schema version of state.
const stateVersion = 1

// state is what a relay job has achieved so far, kept in the store beside
// the message so that a retry sends only to the recipients still owed:
// accepted and reported recipients are never sent again, even when an
// earlier attempt's queue acknowledgement was lost. It is written only when
// a job is to be retried after some recipients were settled.
type state struct {
	V int `json:"v"`
	// Created is the job's Created: a later job for the same message and
	// route (a replay) starts afresh rather than skipping recipients.
	Created time.Time `json:"created"`
	// Done are recipients accepted, or failed and queued for a DSN.
	Done []string `json:"done"`
	// DelayNotified says the delay notice was queued.
	DelayNotified bool `json:"delay_notified,omitempty"`
}

// StateKey is the store key of a relay job's progress for one route. Keys
// derive from the message id; a route name that is not a plain key element
// is hashed.
func StateKey(id postern.MsgID, route string) string {
	name := route
	if !plainName(route) {
		sum := sha256.Sum256([]byte(route))
		name = "h-" + hex.EncodeToString(sum[:12])
	}
	return id.Prefix() + "relay-" + name + ".json"
}

func plainName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// loadState reads the job's progress. No object, or one from another job
// (a replay), is a fresh start; so is an unreadable one (logged), since the
// worst that costs is a duplicate send.
func (h *Handler) loadState(ctx context.Context, j *postern.RelayJob) (*state, error) {
	fresh := &state{V: stateVersion, Created: j.Created}
	rc, err := h.store.Get(ctx, StateKey(j.ID, j.Route))
	if errors.Is(err, blob.ErrNotFound) {
		return fresh, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read relay state: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read relay state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.V != stateVersion {
		h.log.LogAttrs(ctx, slog.LevelWarn, "relay state unreadable; starting afresh",
			slog.String("msg_id", string(j.ID)), slog.String("stage", "relay"), slog.String("route", j.Route),
			slog.Int("state_v", st.V), slog.Any("error", err))
		return fresh, nil
	}
	if !st.Created.Equal(j.Created) {
		return fresh, nil
	}
	return &st, nil
}

func (h *Handler) saveState(ctx context.Context, j *postern.RelayJob, st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode relay state: %w", err)
	}
	if err := h.store.Put(ctx, StateKey(j.ID, j.Route), bytes.NewReader(b), &blob.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write relay state: %w", err)
	}
	return nil
}
