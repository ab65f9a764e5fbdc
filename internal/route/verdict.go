package route

import (
	"fmt"
	"slices"
	"strings"

	"github.com/postern/postern/internal/postern"
)

// Verdicts are a message's sender-authentication results as rules match
// them: RFC 8601 result names (pass, fail, softfail, neutral, none, policy,
// temperror, permerror), one per DKIM signature.
type Verdicts struct {
	SPF   string
	DKIM  []string
	DMARC string
}

// VerdictsOf is what rules match of the verdicts the parse stage stored
// (parsed.json's auth): the parse stage routes on it, and a replay to a
// route decides on the same values. nil stays nil: no verdicts known.
func VerdictsOf(a *postern.Auth) *Verdicts {
	if a == nil {
		return nil
	}
	v := &Verdicts{SPF: a.SPF.Result, DMARC: a.DMARC.Result, DKIM: make([]string, len(a.DKIM))}
	for i, d := range a.DKIM {
		v.DKIM[i] = d.Result
	}
	return v
}

// Option changes a Table built by New.
type Option func(*Table)

// WithInternet says which identities' mail gets verdicts (config
// identities[].internet). Rules with verdict conditions never match mail
// from any other identity, at RCPT time included, so such mail is refused
// there rather than accepted on a rule that cannot take it. Without this
// option every identity's mail may have verdicts.
func WithInternet(internet func(identity string) bool) Option {
	return func(t *Table) { t.internet = internet }
}

// verdictNames are the result names a condition may list, per check.
var verdictNames = map[string][]string{
	"spf":   {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"},
	"dkim":  {"pass", "fail", "policy", "neutral", "none", "temperror", "permerror"},
	"dmarc": {"pass", "fail", "none", "temperror", "permerror"},
}

// compileVerdicts lower-cases a verdict condition and checks its names.
func compileVerdicts(where, check string, src []string, errs *[]error) []string {
	out := make([]string, 0, len(src))
	for j, s := range src {
		v := strings.ToLower(s)
		if !slices.Contains(verdictNames[check], v) {
			*errs = append(*errs, fmt.Errorf("%s: %s[%d] %q is not a result; use one of %s",
				where, check, j, s, strings.Join(verdictNames[check], ", ")))
			continue
		}
		out = append(out, v)
	}
	return out
}

func (c *compiledRule) hasVerdicts() bool {
	return len(c.spf) > 0 || len(c.dkim) > 0 || len(c.dmarc) > 0
}

// mayHaveVerdicts reports whether mail from identity gets verdicts that a
// verdict condition could match.
func (t *Table) mayHaveVerdicts(identity string) bool {
	return t.internet == nil || t.internet(identity)
}

// matchVerdicts reports whether v meets c's verdict conditions. Unknown
// verdicts (nil) meet none: a rule with verdict conditions then does not
// match, as a header rule does not without a header.
func (c *compiledRule) matchVerdicts(v *Verdicts) bool {
	if !c.hasVerdicts() {
		return true
	}
	if v == nil {
		return false
	}
	if len(c.spf) > 0 && !slices.Contains(c.spf, strings.ToLower(v.SPF)) {
		return false
	}
	if len(c.dmarc) > 0 && !slices.Contains(c.dmarc, strings.ToLower(v.DMARC)) {
		return false
	}
	if len(c.dkim) > 0 && !slices.ContainsFunc(v.DKIM, func(d string) bool { return slices.Contains(c.dkim, strings.ToLower(d)) }) {
		return false
	}
	return true
}
