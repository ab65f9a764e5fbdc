package authcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// fromParser reads From addresses without decoding display names in
// charsets net/mail does not know: only the domain matters here.
var fromParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, in io.Reader) (io.Reader, error) { return in, nil },
}}

// fromDomain returns the one domain of the From field, which DMARC needs
// (RFC 7489 section 6.6.1).
func fromDomain(h header) (string, error) {
	froms := h.values("From")
	if len(froms) != 1 {
		return "", fmt.Errorf("%d From fields", len(froms))
	}
	addrs, err := fromParser.ParseList(froms[0])
	if err != nil {
		return "", errors.New("From field unparseable")
	}
	domain := ""
	for _, a := range addrs {
		at := strings.LastIndexByte(a.Address, '@')
		d := normalizeDomain(a.Address[at+1:])
		if at < 0 || !validDomain(d) {
			return "", errors.New("From address without a valid domain")
		}
		if domain != "" && d != domain {
			return "", errors.New("From addresses in several domains")
		}
		domain = d
	}
	if domain == "" {
		return "", errors.New("From field without an address")
	}
	return domain, nil
}

var errMultiple = errors.New("several DMARC records")

// countDMARC counts the records of a policy lookup that are DMARC records:
// more than one and policy discovery ends with none (RFC 7489 section 6.6.3,
// step 5).
func countDMARC(txts []string) int {
	n := 0
	for _, t := range txts {
		if strings.HasPrefix(t, "v=DMARC1") {
			n++
		}
	}
	return n
}

// orgDomain is the organizational domain of RFC 7489 section 3.2: one label
// below the public suffix. A name that is itself a public suffix is its own.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned says whether an authenticated domain is aligned with the From
// domain: equal in strict mode, the same organizational domain in relaxed
// mode (RFC 7489 section 3.1).
func aligned(authDomain, from string, mode dmarc.AlignmentMode) bool {
	if authDomain == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return authDomain == from
	}
	return orgDomain(authDomain) == orgDomain(from)
}

func checkDMARC(ctx context.Context, r Resolver, h header, herr error, spfRes SPF, dkims []DKIM) DMARC {
	if herr != nil {
		return DMARC{Result: headerVerdict(herr), Reason: "message header unreadable: " + herr.Error()}
	}
	domain, err := fromDomain(h)
	if err != nil {
		// No single From domain: DMARC cannot say anything about it.
		return DMARC{Result: PermError, Reason: err.Error()}
	}
	out := DMARC{Domain: domain}

	// Policy discovery (RFC 7489 section 6.6.3): the From domain, then its
	// organizational domain, whose sp= applies to its subdomains.
	multiple := false
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) {
		txts, err := r.LookupTXT(ctx, name)
		if n := countDMARC(txts); n > 1 {
			// go-msgauth takes the first; the RFC says none applies.
			multiple = true
			return nil, nil
		}
		return txts, err
	}}
	rec, err := dmarc.LookupWithOptions(domain, opts)
	atOrg := false
	if org := orgDomain(domain); errors.Is(err, dmarc.ErrNoPolicy) && org != domain && !multiple {
		rec, err = dmarc.LookupWithOptions(org, opts)
		atOrg = true
	}
	if multiple {
		rec, err = nil, errMultiple
	}
	var spfMode, dkimMode dmarc.AlignmentMode = dmarc.AlignmentRelaxed, dmarc.AlignmentRelaxed
	if rec != nil {
		spfMode, dkimMode = rec.SPFAlignment, rec.DKIMAlignment
	}

	// Alignment is worked out even without a record, for applications that
	// look at it on their own.
	out.AlignedSPF = spfRes.Result == Pass && aligned(spfRes.Domain, domain, spfMode)
	spfMaybe := spfRes.Result == TempError && aligned(spfRes.Domain, domain, spfMode)
	dkimMaybe := false
	for _, d := range dkims {
		switch {
		case d.Result == Pass && aligned(d.Domain, domain, dkimMode):
			out.AlignedDKIM = true
		case d.Result == TempError && aligned(d.Domain, domain, dkimMode):
			dkimMaybe = true
		}
	}

	switch {
	case dmarc.IsTempFail(err):
		out.Result, out.Reason = TempError, err.Error()
		return out
	case errors.Is(err, dmarc.ErrNoPolicy):
		out.Result, out.Reason = None, "no DMARC record"
		return out
	case errors.Is(err, errMultiple):
		out.Result, out.Reason = None, err.Error()
		return out
	case err != nil:
		out.Result, out.Reason = PermError, err.Error()
		return out
	}

	out.Policy = string(rec.Policy)
	if atOrg && rec.SubdomainPolicy != "" {
		out.Policy = string(rec.SubdomainPolicy)
	}
	switch {
	case out.AlignedSPF || out.AlignedDKIM:
		out.Result = Pass
	case spfMaybe || dkimMaybe:
		// An aligned check could not finish: failing now would let a DNS
		// hiccup reject mail that p=reject protects nothing from.
		out.Result, out.Reason = TempError, "an aligned SPF or DKIM check had a temporary error"
	default:
		out.Result, out.Reason = Fail, "no aligned SPF or DKIM pass"
	}
	return out
}
