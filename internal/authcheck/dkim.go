package authcheck

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-msgauth/dkim"
)

// maxSignatures bounds the signatures verified per message: each costs a DNS
// question and a pass over the body. Those beyond are reported as policy.
const maxSignatures = 10

const dkimSignature = "DKIM-Signature"

func checkDKIM(ctx context.Context, r Resolver, h header, herr error, msg *stream) []DKIM {
	sigs := h.values(dkimSignature)
	if herr != nil {
		return []DKIM{{Result: headerVerdict(herr), Reason: "message header unreadable: " + herr.Error()}}
	}
	if len(sigs) == 0 {
		return []DKIM{{Result: None, Reason: "no signature"}}
	}

	out := make([]DKIM, len(sigs))
	sigTags := make([]map[string]string, len(sigs))
	for i, s := range sigs {
		t := tags(s)
		sigTags[i] = t
		out[i] = DKIM{Domain: normalizeDomain(t["d"]), Selector: t["s"], Algorithm: t["a"]}
	}

	verifs, err := dkim.VerifyWithOptions(msg, &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			return r.LookupTXT(ctx, name)
		},
		MaxVerifications: maxSignatures,
	})
	switch {
	case msg.err != nil:
		return setAll(out, TempError, "message unreadable: "+msg.err.Error())
	case err != nil && !errors.Is(err, dkim.ErrTooManySignatures):
		return setAll(out, PermError, err.Error())
	case len(verifs) != min(len(out), maxSignatures):
		// The library and parseFields disagree on where fields are; do
		// not pair verdicts with the wrong signatures.
		return setAll(out, PermError, "malformed message header")
	}

	for i := range out {
		if i >= len(verifs) {
			out[i].Result = Policy
			out[i].Reason = fmt.Sprintf("not verified: more than %d signatures", maxSignatures)
			continue
		}
		v := verifs[i]
		if v.Domain != "" {
			out[i].Domain = normalizeDomain(v.Domain)
		}
		switch {
		case v.Err == nil:
			out[i].Result = Pass
		case dkim.IsTempFail(v.Err):
			out[i].Result, out[i].Reason = TempError, v.Err.Error()
		case dkim.IsPermFail(v.Err):
			out[i].Result, out[i].Reason = PermError, v.Err.Error()
		default:
			out[i].Result, out[i].Reason = Fail, v.Err.Error()
			if _, ok := sigTags[i]["l"]; ok {
				// go-msgauth refuses every signature with a body
				// length tag, as it lets anything be appended to
				// the body: the signature is unacceptable rather
				// than wrong (RFC 8601 section 2.7.1, policy).
				out[i].Result = Policy
			}
		}
	}
	return out
}

func setAll(out []DKIM, v Verdict, reason string) []DKIM {
	for i := range out {
		out[i].Result, out[i].Reason = v, reason
	}
	return out
}
