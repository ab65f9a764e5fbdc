package authcheck

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// maxARCSets is the most ARC sets RFC 8617 section 4.2.1 allows.
const maxARCSets = 50

// maxReported bounds the text copied from the message into a report.
const maxReported = 512

// arcSets reports the ARC-Authentication-Results fields of the message,
// with the cv= its ARC-Seal of the same instance claims, or nil when there
// are none.
func arcSets(h header) *ARC {
	aars := h.values("ARC-Authentication-Results")
	seals := h.values("ARC-Seal")
	if len(aars) == 0 && len(seals) == 0 {
		return nil
	}
	cv := make(map[int]string)
	for _, s := range seals {
		t := tags(s)
		if i, err := strconv.Atoi(t["i"]); err == nil {
			cv[i] = clean(t["cv"], 16)
		}
	}
	out := &ARC{
		Result: None,
		Reason: "not verified: no ARC verifier; sets are as earlier hops claim",
		Sets:   []ARCSet{},
	}
	for _, v := range aars {
		if len(out.Sets) == maxARCSets {
			break
		}
		inst, rest, _ := strings.Cut(v, ";")
		k, n, _ := strings.Cut(inst, "=")
		i, err := strconv.Atoi(strings.TrimSpace(n))
		if strings.TrimSpace(k) != "i" || err != nil {
			continue
		}
		set := ARCSet{Instance: i, ChainValidation: cv[i]}
		id, results, _ := strings.Cut(rest, ";")
		set.AuthServID = clean(strings.TrimSpace(id), 255)
		set.Results = clean(strings.TrimSpace(results), maxReported)
		out.Sets = append(out.Sets, set)
	}
	slices.SortStableFunc(out.Sets, func(a, b ARCSet) int { return cmp.Compare(a.Instance, b.Instance) })
	return out
}

// clean makes text from a message safe to report: no control characters,
// no backslashes or quotes (which would end a quoted string in a header
// early), valid UTF-8, at most n bytes.
func clean(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		switch {
		case r < ' ' || r == 0x7f || r >= 0x80 && r < 0xa0:
			return ' '
		case r == '\\' || r == '"':
			return '\''
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
		s = strings.ToValidUTF8(s, "") // a rune cut in half
	}
	return s
}
