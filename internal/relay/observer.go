package relay

import "time"

// Outcomes of a recipient in one attempt, as Observer counts them.
const (
	OutcomeDelivered = "delivered" // the remote accepted it
	OutcomeDeferred  = "deferred"  // refused for now; the job is retried
	OutcomeFailed    = "failed"    // refused for good; a DSN is queued
	OutcomeExpired   = "expired"   // still refused at the route's max age; a DSN is queued
	OutcomeError     = "error"     // the attempt failed on this side (reading the message, queueing the DSN); the job is retried
)

// Observer is told what each relay attempt came to, per route. The Handler
// calls it only for routes the configuration names (a job for an unknown
// route is refused first), so its labels stay bounded. Implementations
// must be safe for concurrent use; metrics.Relay is one.
type Observer interface {
	// RelayRecipients counts n recipients of route with outcome, one of
	// the Outcome constants. n may be 0.
	RelayRecipients(route, outcome string, n int)
	// RelayAttempt is one Send through route's transport and how long it
	// took.
	RelayAttempt(route string, d time.Duration)
}

type noObserver struct{}

func (noObserver) RelayRecipients(string, string, int) {}
func (noObserver) RelayAttempt(string, time.Duration)  {}
