package route_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/postern/postern/internal/parse"
	"github.com/postern/postern/internal/route"
)

// The gateway decides at the end of DATA on HeaderLookup of the header
// bytes; the parse stage decides on route.FieldLookup of the parsed
// message's headers. These tests hold the two to the same values, on the
// fixtures below and on every message in the parse stage's test data.

var headerFixtures = map[string]string{
	"utf8 encoded words": "From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>\r\n" +
		"Subject: =?UTF-8?Q?Scan_fertig:_Gr=C3=BC=C3=9Fe?=\r\n" +
		"X-Words: =?UTF-8?Q?a?=  =?UTF-8?Q?b?= c\r\n\r\nbody\r\n",
	"iso-8859-1": "Subject: =?ISO-8859-1?Q?Stra=DFe_K=F6ln?=\r\n" +
		"X-Site: =?iso-8859-1?b?TfxuY2hlbg==?=\r\n\r\n",
	"folded": "Subject: a very\r\n long\r\n\tsubject\r\n" +
		"Received: from x\r\n\tby y;\r\n\tTue, 4 Feb 2025 09:15:00 +0000\r\n\r\n",
	"repeated": "X-Tag: one\r\nx-tag: two\r\nX-TAG: =?UTF-8?Q?dr=C3=A8i?=\r\nSubject: s\r\n\r\n",
	"malformed": "Subject: =?bogus?Q?x?= and =?UTF-8?B?!!!?=\r\n" +
		"no colon here\r\n" +
		"Bad Name: x\r\n" +
		"X-Nul: a\x00b\xfe\r\n" +
		": empty name\r\n\r\n",
	"lf only": "Subject: =?utf-8?q?caf=C3=A9?=\nX-A: 1\n x\n\nSubject: body\n",
}

func TestHeaderLookupAgreesWithParse(t *testing.T) {
	t.Parallel()
	for name, raw := range headerFixtures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			agree(t, []byte(raw))
		})
	}
}

func TestHeaderLookupAgreesWithParseOnTestdata(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "parse", "testdata", "*", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	top, _ := filepath.Glob(filepath.Join("..", "parse", "testdata", "*.eml"))
	files = append(files, top...)
	if len(files) < 10 {
		t.Fatalf("found %d .eml files under ../parse/testdata; the test data moved?", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			agree(t, raw)
		})
	}
}

// agree checks that raw's header decodes to the parse stage's Headers and
// that both lookups answer alike for every field name, in any case.
func agree(t *testing.T, raw []byte) {
	t.Helper()
	p := parse.Parse(raw, parse.Config{})
	look, err := route.HeaderLookup(raw)
	if err != nil {
		t.Fatalf("HeaderLookup: %v", err)
	}
	if got := route.DecodeHeader(headerOf(raw)); !reflect.DeepEqual(got, p.Headers) {
		t.Errorf("DecodeHeader:\n%q\nparse Headers:\n%q", got, p.Headers)
	}
	parsed := route.FieldLookup(p.Headers)
	if len(p.Headers) == 0 {
		t.Fatal("parse found no headers; not a useful fixture")
	}
	for _, h := range p.Headers {
		for _, name := range []string{h.Name, strings.ToUpper(h.Name), strings.ToLower(h.Name)} {
			if got, want := look(name), parsed(name); !slices.Equal(got, want) {
				t.Errorf("%s: HeaderLookup %q, parse %q", name, got, want)
			}
		}
	}
	if v := look("X-Postern-Absent"); v != nil {
		t.Errorf("absent header gave %q", v)
	}
}

// headerOf returns the lines of raw before the first empty one.
func headerOf(raw []byte) []byte {
	lines := strings.SplitAfter(string(raw), "\n")
	n := 0
	for _, l := range lines {
		if l == "\n" || l == "\r\n" {
			break
		}
		n += len(l)
	}
	return raw[:n]
}
