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
type Policy struct {
	// Owner returns the identity's owner address, "" when it has none.
	// Nil means no identity has one.
	Owner func(identity string) string
	// SenderAllowed reports whether the identity may use sender as its
	// envelope sender. A notice goes only to a sender the identity was
	// allowed to use, so a forged sender never receives one. Nil allows any.
	SenderAllowed func(identity, sender string) bool
	// OwnerOnly sends notices to the identity's owner instead of the
	// sender, where the identity has an owner. Without it the owner gets a
	// copy.
	OwnerOnly bool
}

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
//   - the sender is told about the recipients whose NOTIFY asks for it
//     (FAILURE for failed, DELAY for delayed; none given means both;
//     NEVER means none), and only if the identity may use that sender;
//   - the identity's owner, if any, is told about every recipient: it is
//     the operator's alert, not the sender's request; with OwnerOnly the
//     owner is told instead of the sender.
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
	if strings.EqualFold(owner, env.Sender) {
		owner = "" // the sender's own notice covers it
	}

	toSender := owner == "" || !p.OwnerOnly
	if toSender && p.SenderAllowed != nil && !p.SenderAllowed(env.Identity, env.Sender) {
		toSender = false
		skipped = append(skipped, "sender not allowed for identity")
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
