package route

import (
	"regexp"
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "anything@example.com", true},
		{"*@example.com", "printer@example.com", true},
		{"*@example.com", "printer@EXAMPLE.COM", true},
		{"*@example.com", "printer@example.com.evil", false},
		{"*@example.com", "printer@sub.example.com", false},
		{"*@*.example.com", "printer@sub.example.com", true},
		{"scan+*@example.com", "scan+tag@example.com", true},
		{"scan+*@example.com", "scan@example.com", false},
		{"?@x", "a@x", true},
		{"?@x", "@x", false},
		{"?@x", "ab@x", false},
		{"?@x", "é@x", true}, // one character, two bytes
		{"[a]@x", "[a]@x", true},
		{"[a]@x", "a@x", false},
		{`a\*@x`, `a\bc@x`, true},
		{"a.b@x", "aXb@x", false},
		{"STRASSE@x", "strasse@x", true},
		{"\u212a@x", "k@x", true}, // Kelvin sign folds to k
		{"*a*a*a*a*b", strings.Repeat("a", 200), false},
		{"**", "", true},
		{"a*", "a", true},
		{"*a", "ba", true},
		{"*a", "ab", false},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.pat)
		if err != nil {
			t.Fatalf("ParsePattern(%q): %v", tt.pat, err)
		}
		if got := p.Match(tt.s); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.pat, tt.s, got, tt.want)
		}
	}
}

func TestParsePatternRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "a\x00b", "\xff@x", "a\nb"} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) succeeded, want error", s)
		}
	}
}

// oracle translates a glob into an anchored, case-insensitive regexp.
func oracle(pat string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`(?is)\A`)
	for _, r := range pat {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`\z`)
	return regexp.Compile(b.String())
}

func FuzzPattern(f *testing.F) {
	f.Add("*@example.com", "dev@Example.com")
	f.Add("?*?", "ab")
	f.Add("a*b*c", "axxbyyc")
	f.Add("*a*a*b", "aaaaaaaaaaaaaaaaa")
	f.Add("\u212a*", "kelvin")
	f.Add("ß?", "SSx")
	f.Fuzz(func(t *testing.T, pat, s string) {
		if len(pat) > 64 || len(s) > 256 {
			return // keep regexp compilation and matching cheap
		}
		p, err := ParsePattern(pat)
		if err != nil {
			return
		}
		// Invalid UTF-8 in s is kept: regexp and the matcher both read each
		// bad byte as U+FFFD, so the oracle holds there too.
		re, err := oracle(pat)
		if err != nil {
			t.Fatalf("oracle(%q): %v", pat, err)
		}
		if got, want := p.Match(s), re.MatchString(s); got != want {
			t.Fatalf("%q.Match(%q) = %v, regexp %s says %v", pat, s, got, re, want)
		}
	})
}
