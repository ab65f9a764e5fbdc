package route

import (
	"errors"
	"fmt"
	"github.com/postern/postern/internal/mailheader"
	"maps"
	"slices"
)

// Table is an ordered, validated rule list. It is immutable after New and
// safe for concurrent use.
type Table struct {
	rules       []Rule
	compiled    []compiledRule
	headerRules bool // some rule has header conditions
	internet    func(identity string) bool
}

// Meta is what a message offers to matching.
type Meta struct {
	Recipient string // one envelope recipient
	Sender    string // envelope sender; "" is the null sender
	Identity  string // the identity that submitted the message

	// Header returns the decoded values of the named header field, matching
	// the name case-insensitively. It is nil before DATA, when no header is
	// known; rules with header conditions then do not match.
	Header func(name string) []string

	// Auth holds the message's sender-authentication verdicts. It is nil
	// where none apply: before the parse stage has checked, and for mail
	// from identities that get none (trusted ones); rules with verdict
	// conditions then do not match.
	Auth *Verdicts
}

type compiledRule struct {
	recipients []Pattern
	senders    []Pattern
	identities []Pattern
	headers    []headerCond
	spf        []string // lower-case result names
	dkim       []string
	dmarc      []string
}

type headerCond struct {
	name    string
	pattern Pattern
}

// nullSender is how rules name the empty reverse-path.
const nullSender = "<>"

// New validates rules and builds a table that keeps their order. All problems
// are reported at once, each naming the rule's index and name and the fix.
// The rules are copied: later changes to the slice do not affect the table.
func New(rules []Rule, opts ...Option) (*Table, error) {
	t := &Table{rules: make([]Rule, len(rules)), compiled: make([]compiledRule, len(rules))}
	for _, o := range opts {
		o(t)
	}
	var errs []error
	seen := make(map[string]int, len(rules))
	for i, r := range rules {
		where := fmt.Sprintf("route[%d] %q", i, r.Name)
		if err := checkName(r.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		} else if j, dup := seen[r.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: name already used by route[%d]; give every route a unique name", where, j))
		} else {
			seen[r.Name] = i
		}
		if !r.Target.Kind.Valid() {
			errs = append(errs, fmt.Errorf("%s: unknown target kind %q; use one of %s, %s, %s, %s",
				where, r.Target.Kind, KindWebhook, KindRelay, KindReject, KindDirectory))
		}
		var c compiledRule
		c.recipients = compileList(where, "recipients", r.Recipients, &errs)
		c.senders = compileList(where, "senders", r.Senders, &errs)
		c.identities = compileList(where, "identities", r.Identities, &errs)
		c.spf = compileVerdicts(where, "spf", r.SPF, &errs)
		c.dkim = compileVerdicts(where, "dkim", r.DKIM, &errs)
		c.dmarc = compileVerdicts(where, "dmarc", r.DMARC, &errs)
		// Sorted, so errors come out in the same order on every run.
		for _, name := range slices.Sorted(maps.Keys(r.Headers)) {
			if !mailheader.ValidName(name) {
				errs = append(errs, fmt.Errorf("%s: headers: %q is not a header field name; use printable ASCII without spaces or ':'", where, name))
				continue
			}
			p, err := ParsePattern(r.Headers[name])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: headers[%q]: %w", where, name, err))
				continue
			}
			c.headers = append(c.headers, headerCond{name: name, pattern: p})
		}
		if len(r.Headers) > 0 {
			t.headerRules = true
		}
		t.rules[i] = copyRule(r)
		t.compiled[i] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// Match returns the first rule that matches m. The returned rule belongs to
// the table and must not be modified.
func (t *Table) Match(m Meta) (*Rule, bool) {
	for i := range t.compiled {
		c := &t.compiled[i]
		if c.hasVerdicts() && !t.mayHaveVerdicts(m.Identity) {
			continue
		}
		if c.matchEnvelope(m.Recipient, m.Sender, m.Identity) && c.matchHeaders(m.Header) && c.matchVerdicts(m.Auth) {
			return &t.rules[i], true
		}
	}
	return nil, false
}

// Accepts reports whether a recipient may be accepted at RCPT time, before
// any header or verdict is known. Rules are taken in order among those whose
// envelope conditions match: one with header or verdict conditions might
// match later, so a non-reject one of them is enough to accept; the first
// one without such conditions settles it, and if it is a reject rule the
// recipient is refused. With no such rule the recipient is refused, as Match
// would find no route.
func (t *Table) Accepts(rcpt, sender, identity string) bool {
	for i := range t.compiled {
		c := &t.compiled[i]
		if !c.matchEnvelope(rcpt, sender, identity) {
			continue
		}
		if c.hasVerdicts() && !t.mayHaveVerdicts(identity) {
			continue // never matches this identity's mail
		}
		reject := t.rules[i].Target.Kind == KindReject
		if len(c.headers) > 0 || c.hasVerdicts() {
			if !reject {
				return true
			}
			continue
		}
		return !reject
	}
	return false
}

// HasHeaderRules reports whether some rule has header conditions. Without
// one, Accepts already gives AcceptsMessage's answer at RCPT time and the
// header need not be looked at (verdicts are not known before the parse
// stage, so verdict rules alone do not call for it).
func (t *Table) HasHeaderRules() bool { return t.headerRules }

// AcceptsMessage reports whether a recipient is routed once the message's
// header is known: the parse stage's decision, which refuses a recipient
// that Match finds no rule for or whose rule is a reject rule. header is as
// in Meta (HeaderLookup builds it from the header bytes the same way the
// parse stage does); nil means no header, so header rules do not match.
//
// Verdicts are still unknown here (the parse stage checks them after the
// 250), so a non-reject rule with verdict conditions may take the
// recipient, as at RCPT: the answer is true when some verdicts could make
// the parse stage route it. Without verdict rules it is exactly Match's.
//
// A recipient Accepts refuses is refused here for every header: the gateway
// may accept at RCPT on Accepts and settle at the end of DATA on this.
func (t *Table) AcceptsMessage(rcpt, sender, identity string, header func(name string) []string) bool {
	for i := range t.compiled {
		c := &t.compiled[i]
		if !c.matchEnvelope(rcpt, sender, identity) || !c.matchHeaders(header) {
			continue
		}
		if c.hasVerdicts() && !t.mayHaveVerdicts(identity) {
			continue
		}
		reject := t.rules[i].Target.Kind == KindReject
		if c.hasVerdicts() {
			if !reject {
				return true
			}
			continue
		}
		return !reject
	}
	return false
}

// RoutesMessage reports whether some recipient of rcpts is routed given the
// message's raw header (HeaderLookup's input): the gateway's end-of-DATA
// decision. A header that cannot be read is left to the parse stage: true.
func (t *Table) RoutesMessage(rcpts []string, sender, identity string, header []byte) bool {
	lookup, err := HeaderLookup(header)
	if err != nil {
		return true
	}
	for _, r := range rcpts {
		if t.AcceptsMessage(r, sender, identity, lookup) {
			return true
		}
	}
	return false
}

// Len returns the number of rules.
func (t *Table) Len() int { return len(t.rules) }

func (c *compiledRule) matchEnvelope(rcpt, sender, identity string) bool {
	if sender == "" {
		sender = nullSender
	}
	return anyMatch(c.recipients, rcpt) && anyMatch(c.senders, sender) && anyMatch(c.identities, identity)
}

func (c *compiledRule) matchHeaders(lookup func(string) []string) bool {
	if len(c.headers) == 0 {
		return true
	}
	if lookup == nil {
		return false
	}
	for _, h := range c.headers {
		ok := false
		for _, v := range lookup(h.name) {
			if h.pattern.Match(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// anyMatch reports whether s matches one of ps; an empty list matches all.
func anyMatch(ps []Pattern, s string) bool {
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

func compileList(where, field string, src []string, errs *[]error) []Pattern {
	out := make([]Pattern, 0, len(src))
	for j, s := range src {
		p, err := ParsePattern(s)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %s[%d] %q: %w", where, field, j, s, err))
			continue
		}
		out = append(out, p)
	}
	return out
}

// checkName keeps names safe to embed in webhook ids, log lines and keys.
func checkName(name string) error {
	const fix = "use 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit"
	if name == "" {
		return errors.New("empty name; " + fix)
	}
	if len(name) > 64 {
		return errors.New("name too long; " + fix)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("invalid character %q in name; %s", c, fix)
		}
	}
	return nil
}

func copyRule(r Rule) Rule {
	r.Recipients = slices.Clone(r.Recipients)
	r.Senders = slices.Clone(r.Senders)
	r.Identities = slices.Clone(r.Identities)
	r.Headers = maps.Clone(r.Headers)
	r.SPF = slices.Clone(r.SPF)
	r.DKIM = slices.Clone(r.DKIM)
	r.DMARC = slices.Clone(r.DMARC)
	return r
}

// Rule returns the rule with the given name. The returned rule belongs to
// the table and must not be modified.
func (t *Table) Rule(name string) (*Rule, bool) {
	for i := range t.rules {
		if t.rules[i].Name == name {
			return &t.rules[i], true
		}
	}
	return nil, false
}

// Names returns the rule names in order.
func (t *Table) Names() []string {
	out := make([]string, len(t.rules))
	for i := range t.rules {
		out[i] = t.rules[i].Name
	}
	return out
}
