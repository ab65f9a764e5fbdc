package webhook

import "time"

// Payload forms a route can ask for.
const (
	PayloadJSON = "json" // the signed email.received event (default)
	PayloadRaw  = "raw"  // the raw message as received, message/rfc822
)

// Defaults applied to a Target field left zero.
const (
	DefaultTimeout = 30 * time.Second
	DefaultMaxAge  = 24 * time.Hour
)

// Target is where one route's messages go. Exactly one of URL and Dir is
// meant to be set; Dir wins when both are.
type Target struct {
	URL string
	// Dir makes this a directory target: the payload is written to
	// Dir/<webhook-id>.json (or .eml for raw) instead of POSTed, for trying
	// Postern out without an application.
	Dir string
	// Secrets sign each request. During a rotation there are several and
	// each adds a signature, so receivers holding either key accept it.
	Secrets [][]byte
	Payload string        // PayloadJSON (default) or PayloadRaw
	Timeout time.Duration // per request; DefaultTimeout when zero
	// MaxAge bounds how long after routing a message keeps being retried;
	// past it a failed attempt ends in a DSN. DefaultMaxAge when zero.
	MaxAge time.Duration
	// FailureURL, when set, receives a signed email.failed event when a
	// delivery fails for good (best effort: the DSN is the record).
	FailureURL string
	// AllowPrivate lets URL and FailureURL reach loopback, private and
	// shared (CGNAT) addresses, for applications on the same host or
	// network. Link-local and cloud metadata addresses stay refused. It
	// applies when the Handler was built with its own guarded clients (a nil
	// client in New).
	AllowPrivate bool
}

// Targets looks up a route's target by name. It reports false for a route
// the configuration no longer has.
type Targets func(route string) (Target, bool)

// withDefaults fills zero fields with their defaults.
func (t Target) withDefaults() Target {
	if t.Payload == "" {
		t.Payload = PayloadJSON
	}
	if t.Timeout <= 0 {
		t.Timeout = DefaultTimeout
	}
	if t.MaxAge <= 0 {
		t.MaxAge = DefaultMaxAge
	}
	return t
}
