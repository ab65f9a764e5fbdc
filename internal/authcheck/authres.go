package authcheck

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// maxReason bounds a reason in the header, so the field stays readable.
const maxReason = 200

// AuthenticationResults returns the value of an Authentication-Results
// header field (RFC 8601) for the verdicts, made by authservID (the
// hostname). Each result is on a line of its own, folded with CRLF and a
// tab, so the caller writes "Authentication-Results: " + value + "\r\n".
// Text from the message and DNS is stripped of control characters, quotes
// and backslashes, so it cannot end the field or a quoted string early.
//
// ARC is left out: without a verifier no arc= verdict can be given, and
// arc=none would claim the message has no ARC sets.
func (r Result) AuthenticationResults(authservID string) string {
	id := strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, authservID)
	if id == "" {
		id = "localhost"
	}
	results := []authres.Result{&authres.SPFResult{
		Value:  value(r.SPF.Result),
		Reason: reason(r.SPF.Reason),
		From:   pick(r.SPF.Scope == ScopeMailFrom, domainParam(r.SPF.Domain)),
		Helo:   pick(r.SPF.Scope == ScopeHELO, domainParam(r.SPF.Domain)),
	}}
	for _, d := range r.DKIM {
		results = append(results, &authres.GenericResult{
			Method: "dkim",
			Value:  value(d.Result),
			Params: map[string]string{
				"reason":   reason(d.Reason),
				"header.d": domainParam(d.Domain),
				"header.s": pick(validName(strings.ToLower(d.Selector)), d.Selector),
				"header.a": token(d.Algorithm),
			},
		})
	}
	results = append(results, &authres.DMARCResult{
		Value:  value(r.DMARC.Result),
		Reason: reason(r.DMARC.Reason),
		From:   domainParam(r.DMARC.Domain),
	})

	var b strings.Builder
	b.WriteString(id)
	for _, res := range results {
		// Formatted one by one, to fold between results.
		s := authres.Format(id, []authres.Result{res})
		b.WriteString(";\r\n\t")
		b.WriteString(strings.TrimRight(s[len(id)+2:], " "))
	}
	return b.String()
}

// value is v as a result value, none when v is not one of the verdicts (a
// zero Result, or one decoded from elsewhere).
func value(v Verdict) authres.ResultValue {
	switch v {
	case Pass, Fail, SoftFail, Neutral, Policy, TempError, PermError:
		return authres.ResultValue(v)
	}
	return authres.ResultNone
}

// reason is a reason made safe for a quoted string that naive parsers split
// at semicolons.
func reason(s string) string {
	return strings.ReplaceAll(clean(s, maxReason), ";", ",")
}

// domainParam is d when it is a domain name, else empty, so the parameter is
// left out: what is not a domain (an address literal, garbage from MAIL
// FROM) has no place in a domain property.
func domainParam(d string) string {
	if validDomain(normalizeDomain(d)) {
		return d
	}
	return ""
}

// token is s when it holds only letters, digits and hyphens (a=
// algorithms), else empty.
func token(s string) string {
	for _, r := range s {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return ""
		}
	}
	return s
}

func pick(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}
