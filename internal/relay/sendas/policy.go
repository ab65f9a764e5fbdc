package sendas

import (
	"fmt"
	"strings"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/route"
)

// Policy is refuse_undeliverable_senders for one identity: which envelope
// senders the routes it can reach could never deliver, so the gateway
// refuses them at MAIL or RCPT instead of accepting mail the provider would
// refuse later. A relay route that signs in as a mailbox and keeps the
// device's From (config.Relay.SendsOnlyAs) delivers only its mailbox and
// send_as_also; every other route (webhook, directory, reject, a relay
// that rewrites From or signs in with no mailbox) delivers any sender. The
// null sender is never refused. Policy is immutable and safe for
// concurrent use.
type Policy struct {
	routes []policyRoute // the routes the identity can match, in table order
}

type policyRoute struct {
	recipients, senders []route.Pattern
	headers             bool // has header conditions: may or may not match after DATA
	reject              bool
	mailbox             string          // "" when the route delivers any sender
	also                []route.Pattern // send_as_also
}

// NewPolicy builds identity's policy from cfg's routes. Patterns are
// compiled as the route table compiles them; cfg is expected to be valid.
func NewPolicy(cfg *config.Config, identity string) (*Policy, error) {
	p := &Policy{}
	for _, r := range cfg.Routes {
		ids, err := patterns(r.Match.Identities)
		if err != nil {
			return nil, fmt.Errorf("routes %s match.identities: %w", r.Name, err)
		}
		if !anyMatch(ids, identity) {
			continue
		}
		pr := policyRoute{headers: len(r.Match.Headers) > 0, reject: r.Reject}
		if pr.recipients, err = patterns(r.Match.Recipients); err != nil {
			return nil, fmt.Errorf("routes %s match.recipients: %w", r.Name, err)
		}
		if pr.senders, err = patterns(r.Match.Senders); err != nil {
			return nil, fmt.Errorf("routes %s match.senders: %w", r.Name, err)
		}
		if r.Relay != nil && r.Relay.SendsOnlyAs() {
			pr.mailbox = r.Relay.Mailbox()
			if pr.also, err = patterns(r.Relay.SendAsAlso); err != nil {
				return nil, fmt.Errorf("routes %s relay.send_as_also: %w", r.Name, err)
			}
		}
		p.routes = append(p.routes, pr)
	}
	return p, nil
}

// Mail decides at MAIL: ok when some route the identity can reach with
// this sender could deliver it, or when no route takes the sender at all
// (RCPT refuses its recipients then). Otherwise mailbox names what the
// first such route sends as, for the reply.
func (p *Policy) Mail(sender string) (mailbox string, ok bool) {
	if sender == "" {
		return "", true
	}
	for _, r := range p.routes {
		if !anyMatch(r.senders, sender) {
			continue
		}
		if r.delivers(sender) {
			return "", true
		}
		if mailbox == "" {
			mailbox = r.mailbox
		}
	}
	return mailbox, mailbox == ""
}

// Rcpt decides at RCPT, taking the routes as route.Table.Accepts does:
// in order among those whose envelope conditions match, a route with
// header conditions may take the recipient and the first without settles
// it. ok when one of those routes could deliver the sender, or when none
// would take the recipient (the route table refuses it); otherwise mailbox
// names what the first of them sends as.
func (p *Policy) Rcpt(rcpt, sender string) (mailbox string, ok bool) {
	if sender == "" {
		return "", true
	}
	for _, r := range p.routes {
		if !anyMatch(r.recipients, rcpt) || !anyMatch(r.senders, sender) {
			continue
		}
		if r.reject {
			if r.headers {
				continue
			}
			break
		}
		if r.delivers(sender) {
			return "", true
		}
		if mailbox == "" {
			mailbox = r.mailbox
		}
		if !r.headers {
			break
		}
	}
	return mailbox, mailbox == ""
}

// delivers reports whether the route could deliver sender.
func (r *policyRoute) delivers(sender string) bool {
	if r.mailbox == "" || strings.EqualFold(sender, r.mailbox) {
		return true
	}
	for _, p := range r.also {
		if p.Match(sender) {
			return true
		}
	}
	return false
}

func patterns(src []string) ([]route.Pattern, error) {
	out := make([]route.Pattern, 0, len(src))
	for _, s := range src {
		p, err := route.ParsePattern(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// anyMatch reports whether s matches one of ps; no patterns match all, as
// in the route table.
func anyMatch(ps []route.Pattern, s string) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.Match(s) {
			return true
		}
	}
	return false
}
