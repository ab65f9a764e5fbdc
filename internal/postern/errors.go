package postern

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Errors are temporary unless marked permanent: an unknown failure is retried,
// never turned into a bounce. Each edge translates these classes once (SMTP
// replies, queue acks, webhook retry-or-DSN).

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// RetryError is a temporary error that names when to try again, for example
// from an HTTP Retry-After header.
type RetryError struct {
	Err   error
	After time.Duration
}

func (e *RetryError) Error() string { return e.Err.Error() }
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter marks err temporary and asks for the next try after d.
func RetryAfter(err error, d time.Duration) error { return &RetryError{Err: err, After: d} }

// RetryDelay returns the delay err asks for, if any.
func RetryDelay(err error) (time.Duration, bool) {
	var r *RetryError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}

// Backoff is the delay before retry number attempt (1 for the first
// failure): exponential with full jitter, uniform in
// [0, min(max, base*2^(attempt-1))], so retries of many jobs spread out
// rather than arrive together.
func Backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(rand.Int64N(int64(d) + 1))
}
