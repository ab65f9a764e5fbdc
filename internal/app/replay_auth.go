package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/route"
)

// storedAuth reads the sender-authentication verdicts and the
// Authentication-Results value the parse stage kept in parsed.json, so a
// replay to a route decides on the verdicts of the first routing (not on
// DNS as it is today) and sends what it sent. A message not parsed yet,
// parsed before verdicts were kept, or trusted (no check ran, so no value
// was sent) has none for rules to match: nil and "".
func storedAuth(ctx context.Context, st blob.Store, id postern.MsgID) (*route.Verdicts, string, error) {
	rc, err := st.Get(ctx, id.ParsedKey())
	if errors.Is(err, blob.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("message %s: parsed form: %w", id, err)
	}
	defer rc.Close()
	var p struct {
		Auth        *postern.Auth `json:"auth"`
		AuthResults string        `json:"auth_results"`
	}
	if err := json.NewDecoder(rc).Decode(&p); err != nil {
		return nil, "", fmt.Errorf("message %s: parsed form: %w", id, err)
	}
	if p.AuthResults == "" {
		return nil, "", nil
	}
	return route.VerdictsOf(p.Auth), p.AuthResults, nil
}
