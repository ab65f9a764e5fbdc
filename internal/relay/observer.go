package relay

import "time"

// Attempt is what one relay attempt came to: how many of its recipients
// ended each way, and how long the send took.
type Attempt struct {
	// Route is the job's route, one the configuration names: a job for
	// an unknown route is refused before any attempt, so this is a
	// bounded label.
	Route   string
	Latency time.Duration // the transport's Send

	Delivered int // the remote accepted them
	Deferred  int // refused for now; the job is retried
	Failed    int // refused for good; a DSN is queued
	Expired   int // still refused at the route's max age; a DSN is queued
	// Error counts recipients a fault on this side (reading the message,
	// queueing the DSN) left unsettled; the job is retried.
	Error int
}

// Observer is told of each relay attempt (metrics.Relay counts them for
// the admin /metrics, EMF writes them for CloudWatch). Implementations
// must be safe for concurrent use.
type Observer interface {
	RelayAttempt(a Attempt)
}

type noObserver struct{}

func (noObserver) RelayAttempt(Attempt) {}
