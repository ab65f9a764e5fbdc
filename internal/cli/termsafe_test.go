package cli

import "testing"

func TestTermSafeEscapesControls(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"scanner@lan":                    "scanner@lan",
		"Grüße, 請求書":                     "Grüße, 請求書",
		"\x1b[31mred\x1b[0m":             `\x1b[31mred\x1b[0m`,
		"a\tb\nc\rd\x00e\x7f":            `a\x09b\x0ac\x0dd\x00e\x7f`,
		"\u009b2J":                       `\u009b2J`, // C1 CSI
		"evil\u202egpj.exe":              `evil\u202egpj.exe`,
		"bad \xff\xfe utf8":              `bad \xff\xfe utf8`,
		"\x1b]8;;http://x\x07link\x1b\\": `\x1b]8;;http://x\x07link\x1b\`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
