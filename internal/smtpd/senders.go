package smtpd

import (
	"log/slog"

	"github.com/emersion/go-smtp"
)

// SenderPolicy refuses envelope senders the routes could never deliver
// (an identity's refuse_undeliverable_senders): a mailbox provider takes
// only what the mailbox a route signs in as may send as, so such mail is
// refused while the device is still connected instead of bounced later.
// Each method reports ok, or the mailbox the route sends as for the reply
// (a configured address, never a secret). The null sender is the caller's
// to pass; sendas.Policy implements it.
type SenderPolicy interface {
	Mail(sender string) (mailbox string, ok bool)
	Rcpt(rcpt, sender string) (mailbox string, ok bool)
}

// checkSender applies id's SenderPolicy at MAIL.
func (s *session) checkSender(id *Identity, from string) *smtp.SMTPError {
	if id.Senders == nil {
		return nil
	}
	mailbox, ok := id.Senders.Mail(from)
	if ok {
		return nil
	}
	s.log.Info("sender refused: no route could deliver it", slog.String("stage", "gateway"), slog.String("identity", id.Name), slog.Int("smtp_code", 550))
	return reply(550, smtp.EnhancedCode{5, 7, 1}, "Sender address rejected: mail is sent only as "+replyAddr(mailbox))
}

// checkSenderRcpt applies the session identity's SenderPolicy at RCPT.
func (s *session) checkSenderRcpt(to string) *smtp.SMTPError {
	if s.identity.Senders == nil {
		return nil
	}
	mailbox, ok := s.identity.Senders.Rcpt(to, s.from)
	if ok {
		return nil
	}
	s.log.Info("recipient refused: its route cannot deliver the sender", slog.String("stage", "gateway"), slog.String("identity", s.identity.Name), slog.Int("smtp_code", 550))
	return reply(550, smtp.EnhancedCode{5, 7, 1}, "Sender address rejected for this recipient: its mail is sent only as "+replyAddr(mailbox))
}

// replyAddr keeps an address to printable ASCII for a reply line.
func replyAddr(a string) string {
	b := []byte(a)
	for i, c := range b {
		if c < 0x21 || c > 0x7e {
			b[i] = '?'
		}
	}
	return "<" + string(b) + ">"
}
