package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/egress"
)

// maxRetryAfter caps a receiver's Retry-After, so a typo of "86400" cannot
// park a message for a day and a hostile date cannot park it for ever.
const maxRetryAfter = time.Hour

// outcome is the result of one delivery attempt: the webhook edge's one
// classification of HTTP answers into done, retry or give up.
type outcome struct {
	status    int           // HTTP status; 0 when no response came
	err       error         // nil when delivered
	permanent bool          // the target refused for good
	after     time.Duration // from Retry-After; 0 when none
	diag      string        // for the DSN, e.g. "http; 410 Gone"; never secrets
	path      string        // the file written, for a directory target
}

// classifyStatus maps an HTTP answer: 2xx delivered; 408, 425, 429 and 5xx
// retried (honouring Retry-After); any other 4xx refused for good. Anything
// else (1xx, a 3xx the client did not follow) is retried: unknown is
// temporary, and max age still ends it.
func classifyStatus(code int, h http.Header, now time.Time) outcome {
	text := strings.TrimSpace(strconv.Itoa(code) + " " + http.StatusText(code))
	o := outcome{status: code, diag: "http; " + text}
	if code >= 200 && code < 300 {
		return o
	}
	o.err = fmt.Errorf("http status %s", text)
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
	case code >= 400 && code < 500:
		o.permanent = true
		return o
	}
	if d, ok := parseRetryAfter(h.Get("Retry-After"), now); ok {
		o.after = d
	}
	return o
}

// classifyError maps a failed round trip (no response) to a temporary
// outcome. The returned error drops *url.Error's URL, which may carry a token.
func classifyError(err error) outcome {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	class := netClass(err)
	return outcome{err: fmt.Errorf("%s: %w", class, err), diag: "http; " + class}
}

// netClass names a network failure in a few fixed words, for DSNs and logs:
// error texts can hold addresses and URLs, these words cannot.
func netClass(err error) string {
	var ref *egress.RefusedError
	if errors.As(err, &ref) {
		// Temporary like other network failures: the fix is a configuration
		// change (the route's allow_private, or its URL), and retrying until
		// max age lets messages through once it is made.
		return "address refused (" + string(ref.Class) + ")"
	}
	switch egress.FailureOf(err) {
	case egress.FailTimeout:
		return "timeout"
	case egress.FailDNS:
		return "dns lookup failed"
	case egress.FailRefused:
		return "connection refused"
	case egress.FailReset:
		return "connection reset"
	case egress.FailUnreachable:
		return "host unreachable"
	case egress.FailTLS:
		return "tls handshake failed"
	case egress.FailClosed:
		return "connection closed"
	}
	return "network error"
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP-date
// (RFC 9110 10.2.3), capped at maxRetryAfter. It reports false for an absent,
// malformed or non-positive value, leaving the queue's backoff in charge.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	} else {
		return 0, false
	}
	if d <= 0 {
		return 0, false
	}
	return min(d, maxRetryAfter), true
}
