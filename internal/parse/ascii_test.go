package parse

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestContainsFold(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"boundary", true}, {"BOUNDARY", true}, {"x; Boundary=\"a\"", true}, {"bBbBoUnDaRy", true},
		{"boundar", false}, {"", false}, {"bbbbbbbbbbbbbbb", false}, {"oundary boundar", false},
		{"Content-Type: multipart/mixed; bOuNdArY=x", true},
	} {
		if got := containsFold([]byte(tc.s), "boundary"); got != tc.want {
			t.Errorf("containsFold(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestPassThroughASCII(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{"Content-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n", true},
		{"Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n", false},
		{"Content-Transfer-Encoding: Quoted-Printable\r\n\r\nGr=FC=DFe\r\n", false},
		{"Content-Transfer-Encoding: BASE64\r\n\r\nR3LDvA==\r\n", false},
		{strings.Repeat("abcdefgh", 1000) + "\x80", false},
		// One part: only its header can name an encoding, so the word in
		// its body does not matter; in a multipart it may be a part's.
		{"Subject: x\r\n\r\nsend it as base64 or quoted-printable\r\n", true},
		{"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nR3I=\r\n--b--\r\n", false},
	} {
		if got := passThroughASCII([]byte(tc.raw)); got != tc.want {
			t.Errorf("passThroughASCII(%.40q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

// The 7-bit pass-through changes nothing: every corpus and test-data
// message, and the benchmark messages, parse to the same result with it
// and without it.
func TestASCIIPassThroughChangesNothing(t *testing.T) {
	t.Parallel()
	msgs := map[string][]byte{"text-10KiB": benchText(), "text-1MiB": benchPlain1MiB(), "pdf-1MiB": benchPDF1MiB(),
		"ascii-declared-latin1": []byte("Content-Type: text/plain; charset=ISO-8859-1\r\n\r\nplain ascii\r\n"),
		"ascii-html":            []byte("Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nhi\r\n--b\r\nContent-Type: text/html; charset=windows-1252\r\n\r\n<p>hi</p>\r\n--b--\r\n"),
	}
	for _, dir := range []string{corpusDir, "testdata"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msgs[f] = raw
		}
	}
	fast := 0
	for name, raw := range msgs {
		if passThroughASCII(raw) {
			fast++
		}
		got, want := Parse(raw, Config{}), Parse(raw, Config{decodeEveryCharset: true})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: parsed differently with the 7-bit pass-through:\n got %s\nwant %s", name, goldenJSON(t, got), goldenJSON(t, want))
		}
	}
	if fast < 3 {
		t.Errorf("only %d messages took the pass-through; the test compares too little", fast)
	}
	if !bytes.Equal(goldenJSON(t, Parse(msgs["ascii-html"], Config{})), goldenJSON(t, Parse(msgs["ascii-html"], Config{decodeEveryCharset: true}))) {
		t.Error("golden JSON differs")
	}
}
