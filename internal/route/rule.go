package route

// Kind is what a route does with the recipients it takes.
type Kind string

// The target kinds. Webhook and directory targets are both delivered by the
// webhook stage; relay by the relay stage; reject refuses the recipient.
const (
	KindWebhook   Kind = "webhook"
	KindRelay     Kind = "relay"
	KindReject    Kind = "reject"
	KindDirectory Kind = "directory"
)

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool {
	switch k {
	case KindWebhook, KindRelay, KindReject, KindDirectory:
		return true
	}
	return false
}

// Rule is one route. Every non-empty condition must hold for the rule to
// match; within a condition, any one pattern matching is enough. Patterns are
// case-insensitive globs (see Pattern).
type Rule struct {
	// Name identifies the route in jobs, logs and webhook ids, and keys the
	// target's details (URL, secret, relay settings) held elsewhere.
	Name string

	Recipients []string // envelope recipient patterns; empty = any
	Senders    []string // envelope sender patterns; empty = any; the null sender is "<>"
	Identities []string // identity name patterns; empty = any

	// Headers maps a header name (case-insensitive) to a pattern on its
	// decoded value. The condition holds when some value of that header
	// matches; an absent header never matches. Empty = any.
	Headers map[string]string

	// SPF, DKIM and DMARC list sender-authentication results (RFC 8601
	// names, such as pass or fail); the condition holds when the message's
	// verdict is listed, for DKIM when some signature's is. Verdicts are
	// known only at the parse stage and only for mail that gets them (see
	// WithInternet); before that such a rule may match, as a header rule
	// may. Empty = any.
	SPF   []string
	DKIM  []string
	DMARC []string

	Target Target
}

// Target is what a matching rule does. Only the kind lives here; the details
// of each target are configured elsewhere, keyed by the rule's name.
type Target struct {
	Kind Kind
}
