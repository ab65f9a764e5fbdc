package authcheck

import (
	"context"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"
	"golang.org/x/net/idna"
)

// spfIdentity returns the domain SPF checks, which identity it came from,
// and the sender to give the SPF library for its macros: the MAIL FROM
// domain, or postmaster@HELO for the null reverse-path or a reverse-path
// without a domain (RFC 7208 sections 2.4 and 4.3).
func spfIdentity(in Input) (domain, scope, sender string) {
	if at := strings.LastIndexByte(in.MailFrom, '@'); at >= 0 && at < len(in.MailFrom)-1 {
		local, d := in.MailFrom[:at], in.MailFrom[at+1:]
		if local == "" || strings.Contains(local, "@") {
			// The library splits at the first @; a quoted local part
			// holding one would send it to the wrong domain.
			local = "postmaster"
		}
		d = normalizeDomain(d)
		return d, ScopeMailFrom, local + "@" + d
	}
	d := normalizeDomain(in.HELO)
	return d, ScopeHELO, "postmaster@" + d
}

func checkSPF(ctx context.Context, r Resolver, in Input) SPF {
	domain, scope, sender := spfIdentity(in)
	out := SPF{Domain: domain, Scope: scope}
	if !validDomain(domain) {
		// Not a domain that can be checked, such as an address literal in
		// HELO (RFC 7208 section 4.3).
		out.Result, out.Reason = None, "no domain to check"
		return out
	}
	if !in.ClientIP.IsValid() {
		out.Result, out.Reason = None, "no client address"
		return out
	}
	ip := net.IP(in.ClientIP.Unmap().AsSlice())
	res, err := spf.CheckHostWithSender(ip, normalizeDomain(in.HELO), sender,
		spf.WithContext(ctx), spf.WithResolver(r))
	out.Result = Verdict(res)
	if err != nil {
		out.Reason = err.Error()
	}
	return out
}

// normalizeDomain returns d in lower case, without a trailing dot, and in
// A-labels when it is an internationalized name (SMTPUTF8), so it compares
// and looks up as DNS does. A name idna rejects is returned lower-cased, for
// validDomain to refuse.
func normalizeDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(d); err == nil {
				return a
			}
			return d
		}
	}
	return d
}

// validDomain says whether d (normalized) is a multi-label host name that can
// be asked of DNS.
func validDomain(d string) bool {
	return strings.Contains(d, ".") && validName(d)
}

// validName says whether d (lower case) is a DNS name of letters, digits,
// hyphens and, as in real-world names, underscores.
func validName(d string) bool {
	if len(d) == 0 || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
