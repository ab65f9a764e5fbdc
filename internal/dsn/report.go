package dsn

import (
	"time"

	"github.com/postern/postern/internal/postern"
)

// Action is a recipient's RFC 3464 Action field.
type Action string

// The actions a Report can carry. Postern sends failed and delayed notices;
// the others are accepted so that a Report can describe any outcome.
const (
	ActionFailed    Action = "failed"
	ActionDelayed   Action = "delayed"
	ActionDelivered Action = "delivered"
	ActionRelayed   Action = "relayed"
	ActionExpanded  Action = "expanded"
)

// Return says how much of the original message a notice carries back
// (RFC 3461 RET).
type Return string

const (
	// ReturnHeaders returns the original's header section only. It is what
	// the zero Return means.
	ReturnHeaders Return = "HDRS"
	// ReturnFull returns the whole original message.
	ReturnFull Return = "FULL"
	// ReturnNone returns nothing of the original: the notice alone.
	ReturnNone Return = "NONE"
)

// Report is everything one notice says. Build turns it into a message.
type Report struct {
	// ReportingMTA is this host's name, written as "dns; <name>".
	ReportingMTA string
	// Domain is the domain of the notice's From (MAILER-DAEMON@Domain);
	// ReportingMTA when empty.
	Domain string
	// To is the address the notice goes to: the original envelope sender or
	// the identity's owner.
	To string
	// ID is the original message's Postern id. It appears in the text and in
	// an X-Postern-Id field, and keys the notice's Message-ID.
	ID postern.MsgID
	// Date is the notice's Date. Callers pass a time fixed by the job (not
	// the clock at build time) so that a retry builds the same bytes.
	Date time.Time
	// MessageID is the notice's Message-ID without angle brackets; derived
	// from the report when empty.
	MessageID string

	// ArrivalDate is when the gateway received the original message.
	ArrivalDate time.Time
	// EnvID is the original ENVID (RFC 3461), decoded; optional.
	EnvID string
	// ReceivedFromMTA is the HELO name of the client that sent the original;
	// optional.
	ReceivedFromMTA string

	// Recipients are reported in order; at least one is required.
	Recipients []Recipient

	// Return is how much of Original the notice carries. ReturnFull falls
	// back to the header section when the original cannot travel as a
	// message/rfc822 part (lines over 998 octets, or NUL); its line ends
	// are made CRLF by package crlf's rule.
	Return Return
	// Original is the original message, or only its header section, as
	// stored. Nil when it is not available: the notice then has two parts.
	Original []byte
}

// Recipient is one recipient's per-recipient fields.
type Recipient struct {
	// Final is the address Postern tried to deliver to (Final-Recipient).
	Final string
	// Original is the RCPT ORCPT parameter as recorded, "type;address" with
	// the address decoded; optional.
	Original string
	Action   Action
	// Status is the RFC 3463 enhanced status, e.g. "5.1.1". Its class must
	// fit Action: 4 or 5 for failed, 4 for delayed, 2 otherwise.
	Status string
	// RemoteMTA is the host that gave the final answer, if one did.
	RemoteMTA string
	// Diagnostic is the Diagnostic-Code value, "type; text", for example
	// "smtp; 550 5.1.1 no such user"; optional.
	Diagnostic string
	// LastAttempt is when delivery was last tried; optional.
	LastAttempt time.Time
	// WillRetryUntil is, for a delayed recipient, when retrying stops.
	WillRetryUntil time.Time
}

// Message is a built notice.
type Message struct {
	// Bytes is the whole message, CRLF line endings.
	Bytes []byte
	// SMTPUTF8 reports that the notice's own header section holds a
	// non-ASCII address, so it must be sent with the SMTPUTF8 extension.
	SMTPUTF8 bool
	// Returned is what of the original the notice actually carries.
	Returned Return
	// MessageID is the notice's Message-ID, without angle brackets.
	MessageID string
}
