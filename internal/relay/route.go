package relay

import (
	"math/rand/v2"
	"time"
)

// Defaults applied to zero Route and backoff settings.
const (
	DefaultMaxAge      = 24 * time.Hour
	DefaultBackoffBase = time.Minute
	DefaultBackoffMax  = 30 * time.Minute
)

// Route is how one route's messages leave.
type Route struct {
	Transport Transport
	// MaxAge bounds how long after routing a recipient that keeps failing
	// temporarily is retried; past it, it is reported as failed. Zero means
	// DefaultMaxAge.
	MaxAge time.Duration
	// DelayNotice, when positive, sends one delay notice (Action: delayed)
	// for recipients still being retried this long after routing.
	DelayNotice time.Duration
}

// Routes looks up a route by name. It reports false for a route the
// configuration no longer has, or one that is not a relay route.
type Routes func(name string) (Route, bool)

func (r Route) maxAge() time.Duration {
	if r.MaxAge > 0 {
		return r.MaxAge
	}
	return DefaultMaxAge
}

// backoff is exponential in the attempt with equal jitter: uniform in
// [d/2, d] for d = min(max, base*2^(attempt-1)), so retries spread out but
// never come back at once.
func backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
