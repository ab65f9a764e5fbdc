package smtpd

import (
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/postern"
)

// The reply table. Every error handed to go-smtp is an *smtp.SMTPError with
// generic text: go-smtp would otherwise answer a plain error with a permanent
// 554 carrying the error text, turning a passing outage into a bounce and
// leaking internals.

func reply(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

var (
	errAuthRequired    = reply(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
	errNeedsTLS        = reply(530, smtp.EnhancedCode{5, 7, 0}, "Must issue a STARTTLS command first")
	errSenderDenied    = reply(553, smtp.EnhancedCode{5, 7, 1}, "Sender address not allowed")
	errRecipientDenied = reply(550, smtp.EnhancedCode{5, 7, 1}, "Recipient address not allowed")
	errNoSuchRecipient = reply(550, smtp.EnhancedCode{5, 1, 1}, "Recipient address rejected: mailbox unavailable")
	errTooManyRcpts    = reply(452, smtp.EnhancedCode{4, 5, 3}, "Too many recipients")
	errTooBig          = reply(552, smtp.EnhancedCode{5, 3, 4}, msgSizeExceeded)
	errRateLimited     = reply(451, smtp.EnhancedCode{4, 7, 0}, "Rate limit exceeded, try again later")
	errShuttingDown    = reply(421, smtp.EnhancedCode{4, 3, 2}, "Service shutting down, try again later")
	errBadSequence     = reply(503, smtp.EnhancedCode{5, 5, 1}, "Bad sequence of commands")
	errNestedMail      = reply(503, smtp.EnhancedCode{5, 5, 1}, "Error: nested MAIL command")
	errStorageLow      = reply(452, smtp.EnhancedCode{4, 3, 1}, "Insufficient system storage")
)

func accepted(id postern.MsgID) *smtp.SMTPError {
	return reply(250, smtp.EnhancedCode{2, 0, 0}, "OK "+string(id))
}

// dataError translates a failed Accept into the reply for the client.
func dataError(err error, id postern.MsgID) *smtp.SMTPError {
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge), errors.Is(err, errBodyTooBig):
		return reply(552, smtp.EnhancedCode{5, 3, 4}, msgSizeExceeded+" "+string(id))
	case errors.Is(err, errHeaderTooBig):
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message header size exceeds limit "+string(id))
	case errors.Is(err, errNoRouteForMessage):
		return reply(550, smtp.EnhancedCode{5, 7, 1}, "Message rejected: no route accepts it "+string(id))
	case errors.Is(err, errLoop):
		return reply(554, smtp.EnhancedCode{5, 4, 6}, "Too many hops, mail loop detected "+string(id))
	case errors.Is(err, smtp.ErrTooLongLine):
		return reply(500, smtp.EnhancedCode{5, 5, 2}, "Line too long "+string(id))
	case errors.Is(err, errClientTimeout):
		// The front has answered this and closed the connection already.
		return reply(421, smtp.EnhancedCode{4, 4, 2}, "Error: timeout exceeded "+string(id))
	case errors.Is(err, context.DeadlineExceeded):
		return reply(451, smtp.EnhancedCode{4, 4, 5}, "Temporary failure, try again later "+string(id))
	}
	return reply(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure, try again later "+string(id))
}

// goSMTPReplies corrects the replies go-smtp v0.26.0 hard-codes, where they
// differ from RFC 5321, 3463 and 4954 or are jokes. Key: the reply line as
// go-smtp writes it; with prefix set the rest of the line (a client's
// address, a number) is dropped with it. "%h" in a replacement is the
// server's host name, "%v" the verb of the command answered. replies_test.go triggers every entry over TCP and
// fails when go-smtp's wording changes and an entry stops matching. Replies
// go-smtp can no longer give because the front answers first (unknown
// verbs and parameters, malformed paths, timeouts, too many errors) are not
// listed: command.go and front.go hold those.
var goSMTPReplies = []struct {
	from   string
	prefix bool
	to     string
}{
	// Sequence errors are 503 (RFC 5321 section 4.2.4); go-smtp says 502,
	// which means "not implemented".
	{from: "502 5.5.1 Please introduce yourself first.", to: "503 5.5.1 Error: send HELO/EHLO first"},
	{from: "502 5.5.1 Missing MAIL FROM command.", to: "503 5.5.1 Error: need MAIL command"},
	{from: "502 5.5.1 Missing RCPT TO command.", to: "503 5.5.1 Error: need RCPT command"},
	{from: "502 5.5.1 MAIL not allowed during message transfer", to: "503 5.5.1 Error: MAIL during BDAT transfer"},
	{from: "502 5.5.1 RCPT not allowed during message transfer", to: "503 5.5.1 Error: RCPT during BDAT transfer"},
	{from: "502 5.5.1 DATA not allowed during message transfer", to: "503 5.5.1 Error: DATA during BDAT transfer"},
	// AUTH (RFC 4954 sections 4 and 6).
	{from: "454 4.7.0 Invalid base64 data", to: "501 5.5.2 Cannot decode the BASE64 response"},
	{from: "502 5.5.4 Missing parameter", to: "501 5.5.4 Syntax: AUTH mechanism [initial-response]"},
	{from: "501 5.0.0 Negotiation cancelled", to: "501 5.7.0 Authentication cancelled"},
	{from: "500 5.5.4 Malformed AUTH parameter value", to: "501 5.5.4 Malformed AUTH parameter value"},
	{from: "500 5.5.4 Malformed AUTH parameter mailbox", to: "501 5.5.4 Malformed AUTH parameter mailbox"},
	// Plain texts, and the enhanced codes RFC 3463 gives.
	{from: "250 2.0.0 Roger, accepting mail from <", prefix: true, to: "250 2.1.0 Sender OK"},
	{from: "250 2.0.0 I'll make sure <", prefix: true, to: "250 2.1.5 Recipient OK"},
	{from: "250 2.0.0 I have successfully done nothing", to: "250 2.0.0 OK"},
	{from: "250 2.0.0 Session reset", to: "250 2.0.0 OK"},
	{from: "354 Go ahead. End your data with <CR><LF>.<CR><LF>", to: "354 End data with <CR><LF>.<CR><LF>"},
	{from: "452 4.5.3 Maximum limit of ", prefix: true, to: "452 4.5.3 Too many recipients"},
	{from: "501 5.5.2 Domain/address argument required for HELO", to: "501 5.5.2 Syntax: %v hostname"},
	// The same words for a declared SIZE over the limit as for a message.
	{from: "552 5.3.4 Max message size exceeded", to: "552 5.3.4 " + msgSizeExceeded},
	{from: "500 5.4.0 Too long line, closing connection", to: "500 5.5.2 Error: line too long"},
	{from: "421 4.0.0 Internal server error", to: "421 4.3.0 %h Internal error, closing connection"},
}

// correction returns the corrected form of one reply line of go-smtp's, or
// "" when it needs none.
func (f *frontConn) correction(line []byte) string {
	for _, c := range goSMTPReplies {
		if len(line) < len(c.from) || string(line[:len(c.from)]) != c.from {
			continue
		}
		if len(line) == len(c.from) || c.prefix {
			// ReplaceAll allocates only where a placeholder is, so the
			// per-message corrections (MAIL, RCPT, DATA) stay free.
			return strings.ReplaceAll(strings.ReplaceAll(c.to, "%h", f.cfg.hostname), "%v", f.verb)
		}
	}
	return ""
}

// correctGreeting: the reply to EHLO starts with the server's domain (RFC
// 5321 section 4.1.1.1; go-smtp says "Hello <client>"), the reply to HELO
// carries no enhanced code (RFC 2034 section 3), and STARTTLS, which the
// front runs, is offered while the session is not yet encrypted.
func (f *frontConn) correctGreeting(lines []string) []string {
	if f.verb == "HELO" {
		return []string{"250 " + f.cfg.hostname}
	}
	out := make([]string, 0, len(lines)+1)
	out = append(out, "250-"+f.cfg.hostname)
	if f.cfg.tls != nil && f.TLS() == nil {
		out = append(out, "250-STARTTLS")
	}
	for _, l := range lines[1:] {
		out = append(out, "250-"+l[4:])
	}
	if len(out) == 1 {
		return []string{"250 " + f.cfg.hostname}
	}
	last := out[len(out)-1]
	out[len(out)-1] = "250 " + last[4:]
	return out
}
