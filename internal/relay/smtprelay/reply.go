package smtprelay

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/egress"
	"github.com/postern/postern/internal/relay"
)

// This file is the smarthost edge's one table from what happened to a
// relay.Reply: the remote's own replies keep their code and text; this
// side's findings get a fixed phrase that leaks no address or secret.

// fromSMTP turns a remote reply into a Reply. The basic code decides the
// class: an enhanced code that disagrees with it is corrected, a missing one
// becomes X.0.0, and a class other than 2, 4 or 5 counts as temporary.
func fromSMTP(e *smtp.SMTPError) relay.Reply {
	class := e.Code / 100
	if class != 2 && class != 4 && class != 5 {
		class = 4
	}
	enh := ""
	if ec := e.EnhancedCode; ec[0] > 0 && ec != smtp.NoEnhancedCode {
		enh = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	}
	status := fmt.Sprintf("%d.0.0", class)
	if enh != "" {
		status = fmt.Sprintf("%d%s", class, enh[1:])
	}
	text := strings.Join(strings.Fields(e.Message), " ")
	if enh != "" {
		text = enh + " " + text
	}
	return relay.Reply{Code: e.Code, Status: status, Text: text, Type: relay.DiagSMTP}
}

// temporary keeps a reply's words but makes it class 4: for refusals that
// are about this side's set-up (greeting, EHLO, STARTTLS, AUTH), which an
// operator can fix, so they must not bounce the sender's mail.
func temporary(r relay.Reply) relay.Reply {
	if r.Status != "" && r.Status[0] != '4' {
		r.Status = "4" + r.Status[1:]
	}
	return r
}

// phase says where a failure happened, which picks the status for network
// trouble: X.4.1 (no answer) before the session is up, X.4.2 (bad
// connection) after.
type phase int

const (
	phaseConnect phase = iota
	phaseSession
)

// failure maps any error from the smarthost conversation to a reply for
// every recipient still open. Remote refusals in set-up are temporary.
func failure(err error, p phase) relay.Reply {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		if p == phaseConnect {
			return temporary(fromSMTP(se))
		}
		return fromSMTP(se)
	}
	status := "4.4.2"
	if p == phaseConnect {
		status = "4.4.1"
	}
	switch egress.FailureOf(err) {
	case egress.FailTimeout:
		return relay.LocalReply(status, "timeout talking to the smarthost")
	case egress.FailCanceled:
		return relay.LocalReply(status, "interrupted")
	case egress.FailDNS:
		return relay.LocalReply("4.4.3", "smarthost name lookup failed")
	case egress.FailRefused:
		return relay.LocalReply("4.4.1", "connection refused")
	case egress.FailUnreachable:
		return relay.LocalReply("4.4.1", "smarthost unreachable")
	case egress.FailTLS:
		return relay.LocalReply("4.7.5", "TLS handshake with the smarthost failed")
	case egress.FailReset, egress.FailClosed:
		return relay.LocalReply(status, "connection lost")
	}
	switch {
	case strings.Contains(err.Error(), "STARTTLS"):
		// go-smtp says so only in words.
		return relay.LocalReply("4.7.4", "smarthost does not offer STARTTLS")
	}
	return relay.LocalReply(status, "network error")
}
