package smtpd

import (
	"context"
	"errors"

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
	errTooBig          = reply(552, smtp.EnhancedCode{5, 3, 4}, "Message size exceeds fixed limit")
	errRateLimited     = reply(451, smtp.EnhancedCode{4, 7, 0}, "Rate limit exceeded, try again later")
	errShuttingDown    = reply(421, smtp.EnhancedCode{4, 3, 2}, "Service shutting down, try again later")
	errBadSequence     = reply(503, smtp.EnhancedCode{5, 5, 1}, "Bad sequence of commands")
)

func accepted(id postern.MsgID) *smtp.SMTPError {
	return reply(250, smtp.EnhancedCode{2, 0, 0}, "OK "+string(id))
}

// dataError translates a failed Accept into the reply for the client.
func dataError(err error, id postern.MsgID) *smtp.SMTPError {
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge), errors.Is(err, errBodyTooBig):
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message size exceeds fixed limit "+string(id))
	case errors.Is(err, errHeaderTooBig):
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message header size exceeds limit "+string(id))
	case errors.Is(err, errLoop):
		return reply(554, smtp.EnhancedCode{5, 4, 6}, "Too many hops, mail loop detected "+string(id))
	case errors.Is(err, smtp.ErrTooLongLine):
		return reply(500, smtp.EnhancedCode{5, 5, 2}, "Line too long "+string(id))
	case errors.Is(err, context.DeadlineExceeded):
		return reply(451, smtp.EnhancedCode{4, 4, 5}, "Temporary failure, try again later "+string(id))
	}
	return reply(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure, try again later "+string(id))
}
