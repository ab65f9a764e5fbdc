package route

import (
	"errors"
	"slices"
	"testing"
)

func TestHeaderLookup(t *testing.T) {
	t.Parallel()
	raw := "Received: from a\r\n" +
		"\tby b; Tue, 4 Feb 2025 09:15:00 +0000\r\n" +
		"Subject: =?UTF-8?B?R3LDvMOfZQ==?= vom =?utf-8?q?Dr=C3=BCcker?=\r\n" +
		"X-Site: =?ISO-8859-1?Q?K=F6ln?=\r\n" +
		"x-site: =?iso-8859-1?B?TfxuY2hlbg==?=\r\n" +
		"X-Folded: one\r\n" +
		"  two\r\n" +
		"\tthree\r\n" +
		"X-Words: =?UTF-8?Q?a?= =?UTF-8?Q?b?=\r\n" +
		"X-Bad-Word: =?nosuch-charset?Q?x?=\r\n" +
		"X-Loose: first\r\n" +
		"continues without a colon\r\n" +
		"Bad Name: dropped\r\n" +
		"X-Nul: a\x00b\xff\r\n" +
		"\r\n" +
		"Subject: in the body, not a header\r\n"
	look, err := HeaderLookup([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want []string
	}{
		{"subject", []string{"Grüße vom Drücker"}},
		{"X-SITE", []string{"Köln", "München"}},
		{"Received", []string{"from a\tby b; Tue, 4 Feb 2025 09:15:00 +0000"}},
		{"X-Folded", []string{"one  two\tthree"}},
		{"X-Words", []string{"ab"}},
		{"X-Bad-Word", []string{"=?nosuch-charset?Q?x?="}},
		{"X-Loose", []string{"first continues without a colon"}},
		{"Bad Name", nil},
		{"X-Nul", []string{"a\uFFFDb\uFFFD"}},
		{"X-Absent", nil},
	} {
		if got := look(c.name); !slices.Equal(got, c.want) {
			t.Errorf("lookup(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestHeaderLookupNeedsTheEmptyLine(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "Subject: x", "Subject: x\r\n", "Subject: x\r\nX-A: \r\n", "Subject: x\r\n \r\n"} {
		if _, err := HeaderLookup([]byte(raw)); !errors.Is(err, ErrHeaderIncomplete) {
			t.Errorf("HeaderLookup(%q) error %v, want ErrHeaderIncomplete", raw, err)
		}
	}
	for _, raw := range []string{"\r\n", "\n", "Subject: x\n\n", "Subject: x\r\n\r\nbody", "Subject: x\r\n\r\n"} {
		if _, err := HeaderLookup([]byte(raw)); err != nil {
			t.Errorf("HeaderLookup(%q): %v", raw, err)
		}
	}
	look, _ := HeaderLookup([]byte("\r\nSubject: body"))
	if v := look("Subject"); v != nil {
		t.Errorf("empty header gave Subject %q", v)
	}
}
