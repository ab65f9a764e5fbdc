package smtpd

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// The grammar of MAIL and RCPT arguments, RFC 5321 section 4.1.2, with the
// RFC 6531 additions (UTF-8 in local parts, domains and parameter values)
// when the transaction carries SMTPUTF8. go-smtp's own parser is lenient
// (it takes "a@@b.." and unquotes quoted local parts), so the front door
// checks the raw argument before go-smtp sees it.

// pathArg is a MAIL FROM: or RCPT TO: argument split into its parts.
type pathArg struct {
	path   string   // inside the angle brackets (or the bare mailbox)
	params []string // ESMTP parameters, keyword[=value]
}

// splitPathArg splits what follows "FROM:" or "TO:". Like Postfix's default
// (strict_rfc821_envelopes = no) it takes a space after the colon and a
// mailbox without angle brackets, which old devices send.
func splitPathArg(s string) (pathArg, bool) {
	s = strings.TrimLeft(s, " ")
	var a pathArg
	rest := ""
	if strings.HasPrefix(s, "<") {
		end := closingBracket(s)
		if end < 0 {
			return a, false
		}
		a.path, rest = s[1:end], s[end+1:]
		if rest != "" && rest[0] != ' ' {
			return a, false
		}
	} else {
		a.path, rest, _ = strings.Cut(s, " ")
		if a.path == "" {
			return a, false
		}
	}
	for _, p := range strings.Split(rest, " ") {
		if p != "" {
			a.params = append(a.params, p)
		}
	}
	return a, true
}

// closingBracket returns the index of the '>' that closes the path opened
// at s[0], skipping quoted strings (a quoted local part may hold '>').
func closingBracket(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '>':
			return i
		}
	}
	return -1
}

// addrProblem says what is wrong with a path; "" when nothing is.
type addrProblem string

const (
	addrOK       addrProblem = ""
	addrSyntax   addrProblem = "syntax"
	addrNonASCII addrProblem = "non-ascii" // fine with SMTPUTF8, not without
)

// checkPath checks a reverse- or forward-path (without its brackets):
// [A-d-l ":"] Mailbox. An empty path is for the caller to judge (the null
// reverse-path).
func checkPath(p string, smtputf8 bool) addrProblem {
	if strings.HasPrefix(p, "@") {
		// A source route (RFC 5321 section 4.1.1.3: accepted, ignored).
		adl, mbox, ok := strings.Cut(p, ":")
		if !ok {
			return addrSyntax
		}
		for _, at := range strings.Split(adl, ",") {
			if !strings.HasPrefix(at, "@") || checkDomain(at[1:], smtputf8) != addrOK {
				return addrSyntax
			}
		}
		p = mbox
	}
	return checkMailbox(p, smtputf8)
}

// checkMailbox checks Local-part "@" ( Domain / address-literal ).
func checkMailbox(m string, smtputf8 bool) addrProblem {
	var local, domain string
	if strings.HasPrefix(m, `"`) {
		end := -1
		for i := 1; i < len(m); i++ {
			if m[i] == '\\' {
				i++
				continue
			}
			if m[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 || end+1 >= len(m) || m[end+1] != '@' {
			return addrSyntax
		}
		local, domain = m[:end+1], m[end+2:]
	} else {
		var ok bool
		local, domain, ok = strings.Cut(m, "@")
		if !ok {
			return addrSyntax
		}
	}
	worst := addrOK
	for _, r := range []addrProblem{checkLocal(local, smtputf8), checkDomainOrLiteral(domain, smtputf8)} {
		if r == addrSyntax {
			return addrSyntax
		}
		if r != addrOK {
			worst = r
		}
	}
	return worst
}

func checkLocal(l string, smtputf8 bool) addrProblem {
	if l == "" || !utf8.ValidString(l) {
		return addrSyntax
	}
	nonASCII := false
	if l[0] == '"' {
		// Quoted-string: qtextSMTP / quoted-pairSMTP between the quotes.
		for i := 1; i < len(l)-1; i++ {
			c := l[i]
			switch {
			case c == '\\':
				i++
				if i >= len(l)-1 || l[i] < 32 || l[i] > 126 {
					return addrSyntax
				}
			case c >= 0x80:
				nonASCII = true
			case c < 32 || c == '"' || c > 126:
				return addrSyntax
			}
		}
	} else {
		// Dot-string: atoms of atext, one dot between them.
		for _, atom := range strings.Split(l, ".") {
			if atom == "" {
				return addrSyntax
			}
			for i := 0; i < len(atom); i++ {
				c := atom[i]
				if c >= 0x80 {
					nonASCII = true
					continue
				}
				if !isAtext(c) {
					return addrSyntax
				}
			}
		}
	}
	if nonASCII && !smtputf8 {
		return addrNonASCII
	}
	return addrOK
}

func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func checkDomainOrLiteral(d string, smtputf8 bool) addrProblem {
	if strings.HasPrefix(d, "[") {
		if !strings.HasSuffix(d, "]") || !checkAddressLiteral(d[1:len(d)-1]) {
			return addrSyntax
		}
		return addrOK
	}
	return checkDomain(d, smtputf8)
}

// checkDomain: sub-domain *("." sub-domain), each a letter-digit-hyphen
// label of at most 63 octets not starting or ending with a hyphen; with
// SMTPUTF8 a label may be a U-label (RFC 6531 section 3.3).
func checkDomain(d string, smtputf8 bool) addrProblem {
	if d == "" || len(d) > 255 || !utf8.ValidString(d) {
		return addrSyntax
	}
	nonASCII := false
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return addrSyntax
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 0x80:
				nonASCII = true
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			default:
				return addrSyntax
			}
		}
	}
	if nonASCII && !smtputf8 {
		return addrNonASCII
	}
	return addrOK
}

// checkAddressLiteral: IPv4-address-literal, "IPv6:" IPv6-addr, or a
// General-address-literal (Standardized-tag ":" 1*dcontent).
func checkAddressLiteral(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Is4() && !strings.Contains(s, ":")
	}
	tag, content, ok := strings.Cut(s, ":")
	if !ok || content == "" || tag == "" {
		return false
	}
	if strings.EqualFold(tag, "IPv6") {
		a, err := netip.ParseAddr(content)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	if tag[len(tag)-1] == '-' || checkDomain(tag, false) != addrOK || strings.Contains(tag, ".") {
		return false
	}
	for i := 0; i < len(content); i++ {
		if c := content[i]; c < 33 || c > 126 || c == '[' || c == '\\' || c == ']' {
			return false
		}
	}
	return true
}

// paramProblem says what is wrong with ESMTP parameters.
type paramProblem int

const (
	paramOK paramProblem = iota
	paramSyntax
	paramUnknown
)

// checkParams checks esmtp-param *(SP esmtp-param) and that every keyword
// is one the server offers for this command.
func checkParams(params []string, known []string, smtputf8 bool) paramProblem {
	for _, p := range params {
		kw, val, hasVal := strings.Cut(p, "=")
		if kw == "" || !isAlnum(kw[0]) {
			return paramSyntax
		}
		for i := 1; i < len(kw); i++ {
			if !isAlnum(kw[i]) && kw[i] != '-' {
				return paramSyntax
			}
		}
		if hasVal {
			if val == "" || !utf8.ValidString(val) {
				return paramSyntax
			}
			for i := 0; i < len(val); i++ {
				c := val[i]
				if c >= 0x80 && smtputf8 {
					continue
				}
				if c < 33 || c > 126 || c == '=' {
					return paramSyntax
				}
			}
		}
		found := false
		for _, k := range known {
			if strings.EqualFold(k, kw) {
				found = true
				break
			}
		}
		if !found {
			return paramUnknown
		}
	}
	return paramOK
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// hasParam reports whether params hold the keyword (case-insensitive).
func hasParam(params []string, keyword string) bool {
	for _, p := range params {
		kw, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(kw, keyword) {
			return true
		}
	}
	return false
}
