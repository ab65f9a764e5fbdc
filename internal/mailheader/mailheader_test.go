package mailheader

import (
	"slices"
	"testing"
)

func TestFields(t *testing.T) {
	t.Parallel()
	block := []byte("Subject: one\r\n two\r\nX-Tag: a\r\nno colon continues\r\nBad Name: dropped\r\nX-Tag:  b \r\n\tfolded\n")
	got := Fields(block)
	want := []Field{{"Subject", "one two"}, {"X-Tag", "a no colon continues"}, {"X-Tag", "b \tfolded"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Fields = %q, want %q", got, want)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"=?utf-8?q?caf=C3=A9?=":             "café",
		"=?ISO-8859-1?Q?Gr=FC=DFe?=":        "Grüße",
		"=?windows-1252?b?gA==?=":           "€",
		"=?x-unknown?q?abc?=":               "=?x-unknown?q?abc?=",
		"plain \xff and \x00":               "plain \uFFFD and \uFFFD",
		"=?utf-8?b?bm90IGNsb3NlZA==?= tail": "not closed tail",
		"=?utf-8?b?bm90IGNsb3NlZA?= tail":   "=?utf-8?b?bm90IGNsb3NlZA?= tail", // bad base64: kept
	} {
		if got := Decode(in); got != want {
			t.Errorf("Decode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBlock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{"A: b\r\n\r\nbody", "A: b\r\n", true},
		{"A: b\n\nbody", "A: b\n", true},
		{"\r\nbody", "", true},
		{"A: b\r\nC: d", "A: b\r\nC: d", false},
	} {
		got, ok := Block([]byte(tc.raw))
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("Block(%q) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}
