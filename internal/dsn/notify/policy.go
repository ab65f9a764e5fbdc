package notify

import (
	"mime"
	"net/textproto"
	"strings"

	"github.com/postern/postern/internal/dsn"
	"github.com/postern/postern/internal/postern"
)

// Policy decides who is told about which recipients. It sits beside the
// dsn queue, not in the builder: the builder renders whatever it is given.
// Policy is pure and safe for concurrent use.
//
// A notice goes to the envelope sender only when that sender is trustworthy
// (see Trusted): a device on a LAN that sends by network address alone could
// have given any sender, and a notice to a forged sender is backscatter.
type Policy struct {
	// Owner returns the identity's owner address, "" when it has none.
	// Nil means no identity has one.
	Owner func(identity string) string
	// AllowedSenders returns the identity's allowed_senders list as a
	// matcher, nil when the identity has none (the gateway let it use any
	// sender) or is not known. Nil means no identity has one.
	AllowedSenders func(identity string) func(sender string) bool
	// OwnerOnly sends notices to the identity's owner instead of the
	// sender, where the identity has an owner. Without it the owner gets a
	// copy.
	OwnerOnly bool
}

// Trusted reports whether the envelope's sender may be sent a notice: the
// client authenticated (SMTP AUTH, recorded in AuthMech and AuthUser), or the
// identity has an allowed_senders list, so the gateway checked the sender
// against it. Where there is a list, the sender must still match it (the
// list may have changed since, or the message been replayed).
func (p Policy) Trusted(env *postern.Envelope) bool {
	ok, _ := p.trust(env)
	return ok
}

// trust is Trusted, and whether the identity has an allowed_senders list.
func (p Policy) trust(env *postern.Envelope) (trusted, listed bool) {
	var list func(string) bool
	if p.AllowedSenders != nil && env.Identity != "" {
		list = p.AllowedSenders(env.Identity)
	}
	if list != nil {
		return list(env.Sender), true
	}
	return env.AuthMech != "" || env.AuthUser != "", false
}

// Why Plan leaves the sender out (the log's reason).
const (
	ReasonNotAllowed = "sender not allowed for identity"
	ReasonUntrusted  = "sender not trusted: identity neither authenticated nor held to allowed_senders"
)

// Notice is one notice to send.
type Notice struct {
	To    string
	Owner bool // the identity owner's notice, not the sender's
	// Failures are the recipients this notice reports, in job order.
	Failures []postern.Failure
}

// Original is what the dsn stage learnt about the original message.
type Original struct {
	// Automatic is set for a message that is itself a delivery or
	// disposition report, or declares itself Auto-Submitted: no notice is
	// ever sent about one, so two systems cannot bounce mail at each other.
	Automatic bool
}

// Plan returns the notices for a job, and why any were left out (for the
// log). Rules, in order:
//   - never to the null sender <>, and never about an automatic message;
//   - the sender is told only if it is trustworthy (Trusted), and only
//     about the recipients whose NOTIFY asks for it (FAILURE for failed,
//     DELAY for delayed; none given means both; NEVER means none);
//   - the identity's owner, if any, is told about every recipient: it is
//     the operator's alert, not the sender's request; with OwnerOnly the
//     owner is told instead of the sender.
//
// So the notice about mail from an untrusted sender goes to the owner only,
// or, without an owner, to nobody: Unreported then names the failures for
// the log.
func (p Policy) Plan(j *dsn.Job, orig Original) (notices []Notice, skipped []string) {
	env := &j.Envelope
	if env.Sender == "" {
		return nil, []string{"null sender"}
	}
	if orig.Automatic {
		return nil, []string{"original is an automatic message"}
	}
	action := j.Action
	if action == "" {
		action = dsn.ActionFailed
	}
	owner := ""
	if p.Owner != nil && env.Identity != "" {
		owner = strings.TrimSpace(p.Owner(env.Identity))
	}
	trusted, listed := p.trust(env)
	if trusted && strings.EqualFold(owner, env.Sender) {
		owner = "" // the sender's own notice covers it
	}

	toSender := owner == "" || !p.OwnerOnly
	if toSender && !trusted {
		toSender = false
		if listed {
			skipped = append(skipped, ReasonNotAllowed)
		} else {
			skipped = append(skipped, ReasonUntrusted)
		}
	}
	if toSender {
		var wanted []postern.Failure
		for _, f := range j.Failed {
			if wants(notifyOf(env, f.Recipient), action) {
				wanted = append(wanted, f)
			}
		}
		if n := len(j.Failed) - len(wanted); n > 0 {
			skipped = append(skipped, "NOTIFY excludes some recipients")
		}
		if len(wanted) > 0 {
			notices = append(notices, Notice{To: env.Sender, Failures: wanted})
		}
	}
	if owner != "" && len(j.Failed) > 0 {
		notices = append(notices, Notice{To: owner, Owner: true, Failures: j.Failed})
	}
	return notices, skipped
}

// Unreported returns the failures of j that none of notices reports, in job
// order: the ones nobody is told about, which the stage logs instead.
func Unreported(j *dsn.Job, notices []Notice) []postern.Failure {
	told := map[string]bool{}
	for _, n := range notices {
		for _, f := range n.Failures {
			told[f.Recipient] = true
		}
	}
	var out []postern.Failure
	for _, f := range j.Failed {
		if !told[f.Recipient] {
			out = append(out, f)
		}
	}
	return out
}

// notifyOf returns the NOTIFY values given for rcpt, nil when none.
func notifyOf(env *postern.Envelope, rcpt string) []string {
	for _, r := range env.Recipients {
		if r.Addr == rcpt {
			return r.Notify
		}
	}
	return nil
}

// wants reports whether NOTIFY asks for a notice of this action.
func wants(notify []string, action dsn.Action) bool {
	if len(notify) == 0 {
		return action == dsn.ActionFailed || action == dsn.ActionDelayed
	}
	want := "FAILURE"
	switch action {
	case dsn.ActionDelayed:
		want = "DELAY"
	case dsn.ActionDelivered, dsn.ActionRelayed, dsn.ActionExpanded:
		want = "SUCCESS"
	}
	for _, n := range notify {
		if strings.EqualFold(n, "NEVER") {
			return false
		}
	}
	for _, n := range notify {
		if strings.EqualFold(n, want) {
			return true
		}
	}
	return false
}

// IsAutomatic reports whether a message's header marks it as automatic: a
// multipart/report (a DSN, an MDN or another report), or Auto-Submitted
// with any value but "no" (RFC 3834).
func IsAutomatic(h textproto.MIMEHeader) bool {
	if v := strings.TrimSpace(h.Get("Auto-Submitted")); v != "" {
		kw, _, _ := strings.Cut(v, ";")
		if !strings.EqualFold(strings.TrimSpace(kw), "no") {
			return true
		}
	}
	if ct := h.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			mt, _, _ = strings.Cut(strings.ToLower(ct), ";")
			mt = strings.TrimSpace(mt)
		}
		if mt == "multipart/report" {
			return true
		}
	}
	return false
}
