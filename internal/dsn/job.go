package dsn

import (
	"time"

	"github.com/postern/postern/internal/postern"
)

// Job is the dsn queue's job body: a postern.DSNJob plus the two fields a
// delay notice needs, which the domain type does not carry yet. A plain
// postern.DSNJob decodes into it unchanged (Action empty means failed), so
// every producer may keep sending postern.DSNJob.
type Job struct {
	postern.DSNJob
	// Action is ActionDelayed for a delay notice; empty means ActionFailed.
	Action Action `json:"action,omitempty"`
	// RetryUntil is, for a delay notice, when the relay stops retrying.
	RetryUntil time.Time `json:"retry_until,omitzero"`
}
