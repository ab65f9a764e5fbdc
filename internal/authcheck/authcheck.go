// Package authcheck gives the sender-authentication verdicts of a received
// message, SPF, DKIM and DMARC (ARC reported, not verified), and renders
// them as an Authentication-Results header (RFC 8601).
package authcheck

import (
	"context"
	"io"
	"net"
	"net/netip"
)

// Resolver is what the checks ask DNS with; *dnsresolve.Resolver and
// *net.Resolver are both one. Errors must be bare *net.DNSError, with
// IsNotFound for NXDOMAIN/NODATA and IsTimeout or IsTemporary for failures
// worth retrying: the SPF, DKIM and DMARC libraries tell temperror from none
// by type assertion on them.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Input is what the SMTP session and the message say about the sender.
type Input struct {
	// ClientIP is the address of the SMTP client (after PROXY protocol).
	ClientIP netip.Addr
	// HELO is the name given in HELO/EHLO.
	HELO string
	// MailFrom is the reverse-path without angle brackets; "" for the null
	// reverse-path <>, when SPF checks the HELO name (RFC 7208 section 2.4).
	MailFrom string
	// Message is the raw message as received, header and body. It is read
	// once, as a stream, and perhaps not to its end. A read error turns the
	// DKIM verdicts into temperror.
	Message io.Reader
	// Trusted says the sender authenticated or came from an identity's
	// configured networks: every verdict is then none with reason "trusted",
	// the message is not read and no DNS question is asked.
	Trusted bool
}

// Verdict is a result value of RFC 8601 section 2.7.
type Verdict string

// The verdicts the checks give. SPF uses all but Policy; DKIM none, pass,
// fail, policy, neutral, temperror, permerror; DMARC none, pass, fail,
// temperror, permerror.
const (
	None      Verdict = "none"
	Pass      Verdict = "pass"
	Fail      Verdict = "fail"
	SoftFail  Verdict = "softfail"
	Neutral   Verdict = "neutral"
	Policy    Verdict = "policy"
	TempError Verdict = "temperror"
	PermError Verdict = "permerror"
)

// ReasonTrusted is the reason of every verdict for a trusted sender.
const ReasonTrusted = "trusted"

// Result holds the verdicts of one message. Its JSON form is the "auth"
// object of the parsed-message payload.
type Result struct {
	SPF SPF `json:"spf"`
	// DKIM has one entry per DKIM-Signature field, in header order, or a
	// single entry with verdict none when there is none (or the sender is
	// trusted), so it is never empty.
	DKIM  []DKIM `json:"dkim"`
	DMARC DMARC  `json:"dmarc"`
	// ARC is set when the message carries ARC header fields.
	ARC *ARC `json:"arc,omitempty"`
}

// SPF is the verdict of RFC 7208 for the client address and the MAIL FROM
// domain, or the HELO name when the reverse-path is null.
type SPF struct {
	Result Verdict `json:"result"`
	// Domain is the domain checked; empty when there was none to check.
	Domain string `json:"domain"`
	// Scope says which identity Domain came from: "mailfrom" or "helo".
	Scope  string `json:"scope,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// SPF scopes.
const (
	ScopeMailFrom = "mailfrom"
	ScopeHELO     = "helo"
)

// DKIM is the verdict of RFC 6376 for one signature.
type DKIM struct {
	Result    Verdict `json:"result"`
	Domain    string  `json:"domain"`    // d=
	Selector  string  `json:"selector"`  // s=
	Algorithm string  `json:"algorithm"` // a=, such as rsa-sha256 or ed25519-sha256
	Reason    string  `json:"reason,omitempty"`
}

// DMARC is the verdict of RFC 7489 for the RFC 5322 From domain.
type DMARC struct {
	Result Verdict `json:"result"`
	// Policy is the policy that applies to the From domain: p= of its own
	// record, or of the organizational domain's record when the From domain
	// has none (sp= when that record has one). Empty when no record was
	// found.
	Policy string `json:"policy"`
	// Domain is the From header's domain.
	Domain string `json:"domain"`
	// AlignedSPF and AlignedDKIM say whether an SPF pass or a DKIM pass was
	// for a domain aligned with Domain, relaxed or strict as the record's
	// aspf= and adkim= say (relaxed when there is no record).
	AlignedSPF  bool   `json:"aligned_spf"`
	AlignedDKIM bool   `json:"aligned_dkim"`
	Reason      string `json:"reason,omitempty"`
}

// ARC reports the ARC sets a message carries. They are not verified:
// go-msgauth v0.7.0 has no ARC verifier, so Result is always none and the
// sets are what earlier hops claim, for applications that choose to trust a
// given sealer.
type ARC struct {
	Result Verdict  `json:"result"`
	Reason string   `json:"reason,omitempty"`
	Sets   []ARCSet `json:"sets"`
}

// ARCSet is one ARC-Authentication-Results field and the cv= of the
// ARC-Seal of the same instance.
type ARCSet struct {
	Instance        int    `json:"instance"`
	AuthServID      string `json:"authserv_id"`
	Results         string `json:"results"`
	ChainValidation string `json:"cv,omitempty"`
}

// Check gives the verdicts for in. It never fails: DNS trouble is a
// temperror verdict, a malformed message a permerror or none, each with a
// reason. It stops early when ctx ends, with temperror verdicts.
func Check(ctx context.Context, r Resolver, in Input) Result {
	if in.Trusted {
		return trusted(in)
	}
	var res Result
	res.SPF = checkSPF(ctx, r, in)

	h, body, herr := readHeader(in.Message)
	res.DKIM = checkDKIM(ctx, r, h, herr, body)
	res.DMARC = checkDMARC(ctx, r, h, herr, res.SPF, res.DKIM)
	res.ARC = arcSets(h)
	return res
}

func trusted(in Input) Result {
	spf := SPF{Result: None, Reason: ReasonTrusted}
	spf.Domain, spf.Scope, _ = spfIdentity(in)
	return Result{
		SPF:   spf,
		DKIM:  []DKIM{{Result: None, Reason: ReasonTrusted}},
		DMARC: DMARC{Result: None, Reason: ReasonTrusted},
	}
}
