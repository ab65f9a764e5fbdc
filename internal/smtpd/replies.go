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
	errSenderDenied    = reply(553, smtp.EnhancedCode{5, 7, 1}, "Sender address not allowed")
	errRecipientDenied = reply(550, smtp.EnhancedCode{5, 7, 1}, "Recipient address not allowed")
	errNoSuchRecipient = reply(550, smtp.EnhancedCode{5, 1, 1}, "Recipient address rejected: mailbox unavailable")
)

func accepted(id postern.MsgID) *smtp.SMTPError {
	return reply(250, smtp.EnhancedCode{2, 0, 0}, "OK "+string(id))
}

// dataError translates a failed Accept into the reply for the client.
func dataError(err error, id postern.MsgID) *smtp.SMTPError {
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return reply(552, smtp.EnhancedCode{5, 3, 4}, "Message size exceeds fixed limit "+string(id))
	case errors.Is(err, context.DeadlineExceeded):
		return reply(451, smtp.EnhancedCode{4, 4, 5}, "Temporary failure, try again later "+string(id))
	}
	return reply(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure, try again later "+string(id))
}
