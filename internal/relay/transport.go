// Package relay is the relay stage: it sends a routed message outward through
// a Transport (an SMTP smarthost or Amazon SES) and reports failures by DSN.
package relay

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/postern"
)

// Transport sends one message to its recipients, once, and says what became
// of each. Drivers: smtprelay (an SMTP smarthost) and sesrelay (Amazon SES).
//
// Send returns exactly one RcptResult per Message.To, in order, whatever the
// remote side did: refusals, network failures and timeouts are Replies
// (temporary unless the remote said otherwise), never errors. The error is
// for a fault on this side, such as a message that could not be read, and
// the caller retries it. Send reads Body at most once (the caller closes it)
// and keeps to ctx's deadline.
//
// Body is the message as stored, whatever its line ends. A driver sends it
// with CRLF line ends only, by reading it through crlf.NewReader: RFC 5321
// forbids a bare CR or LF, and a next hop could end DATA at one (outbound
// SMTP smuggling). Callers pass Body unchanged.
type Transport interface {
	Send(ctx context.Context, m *Message) (*Result, error)
}

// Message is one outbound transaction.
type Message struct {
	ID   postern.MsgID // for logs only
	From string        // envelope sender; "" is the null sender <>
	To   []Rcpt
	Body io.Reader
	// Size is the bytes in Body when known, else 0. Sent with CRLF line
	// ends, a message with bare CR or LF grows by a byte for each; Size
	// stays the stored size, an estimate as the SMTP SIZE parameter allows.
	Size int64
	// SMTPUTF8 is set when the message's header holds UTF-8 (the original
	// came with SMTPUTF8); non-ASCII addresses are detected by the driver.
	SMTPUTF8 bool
	// Ret and EnvID are the original RFC 3461 parameters, passed on where
	// the remote supports DSN so its own notices stay faithful.
	Ret   string
	EnvID string
}

// Rcpt is one envelope recipient with its RFC 3461 parameters.
type Rcpt struct {
	Addr   string
	Notify []string // NEVER, SUCCESS, FAILURE, DELAY; empty: not given
	ORCPT  string   // "type;address", address decoded; optional
}

// Result is the outcome of one Send.
type Result struct {
	// Remote names the remote MTA (host name) for DSN Remote-MTA fields.
	Remote string
	Rcpts  []RcptResult
}

// RcptResult is one recipient's outcome.
type RcptResult struct {
	Addr  string
	Reply Reply
}

// Diagnostic types a Reply can carry (the RFC 3464 diagnostic-type).
const (
	DiagSMTP  = "smtp"      // a reply from a remote SMTP server
	DiagLocal = "X-Postern" // this side's own finding: no connection, timeout, a local limit
)

// Reply is what became of one recipient. Status decides: class 2 accepted,
// class 5 refused for good, anything else temporary.
type Reply struct {
	Code   int    // SMTP reply code; 0 when there was none
	Status string // RFC 3463 enhanced status, e.g. "2.0.0", "4.4.1", "5.1.1"
	Text   string // the remote's words (untrusted) or a fixed local phrase
	Type   string // diagnostic type; DiagSMTP when empty
	// RetryAfter is how long the remote asked to be left alone (an HTTP
	// Retry-After, a throttled token endpoint); 0 when it did not say. The
	// Handler waits at least this long before the next try of a temporary
	// reply, since coming back sooner only draws the same answer.
	RetryAfter time.Duration
}

// Accepted reports whether the remote took the recipient.
func (r Reply) Accepted() bool { return strings.HasPrefix(r.Status, "2.") }

// Permanent reports whether the recipient was refused for good.
func (r Reply) Permanent() bool { return strings.HasPrefix(r.Status, "5.") }

// Remote reports whether the reply came from the remote side rather than
// being this side's diagnosis.
func (r Reply) Remote() bool { return r.Type != DiagLocal }

// Diagnostic renders the reply as an RFC 3464 Diagnostic-Code value, e.g.
// "smtp; 550 5.1.1 no such user" or "X-Postern; connection refused".
func (r Reply) Diagnostic() string {
	typ := r.Type
	if typ == "" {
		typ = DiagSMTP
	}
	var b strings.Builder
	b.WriteString(typ)
	b.WriteString(";")
	if r.Code != 0 {
		b.WriteString(" " + strconv.Itoa(r.Code))
	}
	if r.Text != "" {
		b.WriteString(" " + r.Text)
	}
	return b.String()
}

func (r Reply) String() string { return r.Diagnostic() }

// Uniform is a Result that gives every recipient of m the same reply: what
// a driver returns when the whole transaction failed at once.
func Uniform(m *Message, remote string, r Reply) *Result {
	res := &Result{Remote: remote, Rcpts: make([]RcptResult, len(m.To))}
	for i, rc := range m.To {
		res.Rcpts[i] = RcptResult{Addr: rc.Addr, Reply: r}
	}
	return res
}

// LocalReply is a temporary reply of this side's own making, with a fixed
// phrase that leaks no address or configuration.
func LocalReply(status, phrase string) Reply {
	return Reply{Status: status, Text: phrase, Type: DiagLocal}
}

// checkResult verifies a driver kept the Transport contract.
func checkResult(m *Message, res *Result) error {
	if res == nil {
		return fmt.Errorf("transport returned no result")
	}
	if len(res.Rcpts) != len(m.To) {
		return fmt.Errorf("transport returned %d results for %d recipients", len(res.Rcpts), len(m.To))
	}
	for i, r := range res.Rcpts {
		if r.Addr != m.To[i].Addr {
			return fmt.Errorf("transport result %d is for %q, want %q", i, r.Addr, m.To[i].Addr)
		}
		if len(r.Reply.Status) < 2 || !strings.ContainsRune("245", rune(r.Reply.Status[0])) || r.Reply.Status[1] != '.' {
			return fmt.Errorf("transport result %d: status %q is not an enhanced status", i, r.Reply.Status)
		}
	}
	return nil
}
