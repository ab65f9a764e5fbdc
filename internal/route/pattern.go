package route

import (
	"errors"
	"unicode"
	"unicode/utf8"
)

// Pattern is a case-insensitive glob: '*' matches any run of characters
// (including none), '?' matches exactly one character, and every other
// character matches itself. There is no escape and no character class:
// addresses hold '.', '+', '[' and '\' as plain characters, which is why
// path.Match (with its classes, escapes and '/' rule) is the wrong tool.
//
// Case is compared by Unicode simple folding, the same relation regexp's (?i)
// uses, so "STRASSE" matches "strasse" and "K" (Kelvin sign) matches "k".
type Pattern struct {
	src   string
	runes []rune // folded to the smallest rune of each case orbit
	any   bool   // the pattern is only stars: matches everything
}

// ParsePattern compiles s. It fails for an empty pattern (which would match
// only the empty string and is almost always a configuration slip), invalid
// UTF-8, and control characters.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, errors.New(`empty pattern; use "*" to match anything`)
	}
	if !utf8.ValidString(s) {
		return Pattern{}, errors.New("pattern is not valid UTF-8")
	}
	p := Pattern{src: s, any: true}
	for _, r := range s {
		if unicode.IsControl(r) {
			return Pattern{}, errors.New("pattern holds a control character")
		}
		if r != '*' {
			p.any = false
		}
		p.runes = append(p.runes, foldRune(r))
	}
	return p, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }

// Match reports whether s matches the whole pattern.
func (p Pattern) Match(s string) bool {
	if p.any {
		return true
	}
	str := make([]rune, 0, len(s))
	for _, r := range s {
		str = append(str, foldRune(r))
	}
	return globMatch(p.runes, str)
}

// globMatch is the classic linear-space matcher: on a mismatch it backtracks
// only to the most recent '*', which is enough because a later star can
// absorb whatever an earlier one would have. Worst case O(len(pat)*len(s)).
func globMatch(pat, s []rune) bool {
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		switch {
		case p < len(pat) && pat[p] == '*':
			starP, starI = p, i
			p++
		case p < len(pat) && (pat[p] == '?' || pat[p] == s[i]):
			p++
			i++
		case starP >= 0:
			starI++
			p, i = starP+1, starI
		default:
			return false
		}
	}
	for p < len(pat) && pat[p] == '*' {
		p++
	}
	return p == len(pat)
}

// foldRune maps r to the smallest rune of its simple case-folding orbit, so
// two runes are equal under (?i) exactly when their folds are equal.
func foldRune(r rune) rune {
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	return min
}
