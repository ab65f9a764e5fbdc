package webhook

import "time"

// Attempt outcomes, a bounded set: they become metric label values.
const (
	OutcomeDelivered = "delivered" // the receiver took it (2xx, or the file written)
	OutcomeRetry     = "retry"     // refused for now or unreachable; tried again
	OutcomeFailed    = "failed"    // refused for good; the DSN is queued
	OutcomeExpired   = "expired"   // still failing at the route's max age; the DSN is queued
	// OutcomeError is a fault on this side (the store, a secret source, a
	// DSN that did not queue) or an attempt cut short: the job is retried.
	OutcomeError = "error"
)

// Attempt is what one delivery attempt came to.
type Attempt struct {
	// Route is the job's route, one the configuration names: a job for an
	// unknown route is refused before any attempt, so this is a bounded
	// label.
	Route   string
	Outcome string        // one of the Outcome constants
	Status  int           // the HTTP status; 0 when none came
	Latency time.Duration // the attempt, preparing the payload included
}

// Observer is told of each delivery attempt (metrics.Webhook counts them
// for the admin /metrics). Implementations must be safe for concurrent use.
type Observer interface {
	WebhookAttempt(a Attempt)
}

type noObserver struct{}

func (noObserver) WebhookAttempt(Attempt) {}
