package parse

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"
	"github.com/postern/postern/internal/postern"
)

// nested builds a message whose multiparts nest depth levels deep.
func nested(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("From: bomb@example.com\r\nSubject: nested\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n")
	for i := 1; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i-1, i)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n", depth-1)
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

// flat builds a multipart/mixed message with n small parts.
func flat(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: bomb@example.com\r\nSubject: wide\r\nContent-Type: multipart/mixed; boundary=\"w\"\r\n\r\n")
	for i := 0; i < n; i++ {
		b.WriteString("--w\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n")
	}
	b.WriteString("--w--\r\n")
	return b.Bytes()
}

func TestCheckShapeLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     []byte
		wantErr string
	}{
		{"not multipart", []byte("Subject: x\r\n\r\n--b0\r\n"), ""},
		{"depth at limit", nested(5), ""},
		{"depth over limit", nested(6), "deeper than 5 levels"},
		{"parts at limit", flat(10), ""},
		{"parts over limit", flat(11), "more than 10 MIME parts"},
		{"long boundary", []byte("Content-Type: multipart/mixed; boundary=" + strings.Repeat("z", 999) + "\r\n\r\n" +
			strings.Repeat("--\r\n", 11)), "boundary longer"},
		{"dashes in content are not parts", []byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n" +
			"--a\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("-- \r\nsignature -- here\r\n", 20) +
			"--a--\r\n"), ""},
		{"boundary in the middle of a line", []byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n" +
			"--a\r\nContent-Type: text/plain\r\n\r\ntext--a \r\n" + strings.Repeat("--\r\n", 11) +
			"--a--\r\n"), "ambiguous"},
		{"sibling containers do not add up", []byte(
			"Content-Type: multipart/mixed; boundary=a\r\n\r\n" +
				"--a\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n" +
				"--a\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\ny\r\n--c--\r\n" +
				"--a--\r\n"), ""},
		{"outer boundary closes inner levels", []byte(
			"Content-Type: multipart/mixed; boundary=a\r\n\r\n" +
				"--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nunclosed\r\n" +
				"--a\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\ny\r\n--c--\r\n" +
				"--a--\r\n"), ""},
		{"text part with a boundary does not nest", []byte(
			"Content-Type: multipart/mixed; boundary=a\r\n\r\n" +
				"--a\r\nContent-Type: text/plain; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nx\r\n" +
				"--a--\r\n"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkShape(tt.raw, 5, 10)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkShape = %v, want nil", err)
				}
				return
			}
			var le *limitError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkShape = %v, want a limit error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWalkShapeCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		raw          []byte
		depth, parts int
	}{
		{"nested", nested(7), 7, 7},
		{"flat", flat(12), 1, 12},
		{"not multipart", []byte("Subject: x\r\n\r\n--b\r\n"), 0, 0},
		{"preamble and epilogue", []byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n" +
			"preamble --a-x\r\n--a\r\n\r\none\r\n--a \r\n\r\ntwo\r\n--a--\r\n--a\r\nepilogue\r\n"), 1, 2},
	}
	for _, tt := range tests {
		w, err := walkShape(tt.raw, 100, 100)
		if err != nil || w.depth != tt.depth || w.parts != tt.parts {
			t.Errorf("%s: walk = depth %d parts %d err %v, want depth %d parts %d",
				tt.name, w.depth, w.parts, err, tt.depth, tt.parts)
		}
		root, err := enmime.ReadParts(bytes.NewReader(tt.raw))
		if err != nil {
			t.Fatal(err)
		}
		if depth, parts, _ := treeShape(root); depth != tt.depth || parts != tt.parts {
			t.Errorf("%s: enmime built depth %d parts %d, want %d, %d", tt.name, depth, parts, tt.depth, tt.parts)
		}
	}
}

// A message at the depth limit is still parsed in full.
func TestParseAtDepthLimit(t *testing.T) {
	t.Parallel()
	p := Parse(nested(DefaultMaxDepth), Config{})
	if p.Text != "deep" || hasSevere(p.Errors) {
		t.Fatalf("Text = %q Errors = %+v", p.Text, p.Errors)
	}
}

func TestParseBombsAreBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		raw    []byte
		detail string
	}{
		{"deep", nested(1000), "max_depth"},
		{"deeper", nested(20000), "max_depth"},
		{"wide", flat(100000), "max_parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			p := Parse(tt.raw, Config{})
			// The limit check is linear (under a second here); enmime alone
			// takes from tens of seconds to minutes on these. The bound is
			// loose so that a loaded machine running -race cannot trip it.
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("Parse took %v", d)
			}
			if p.Subject == "" || len(p.From) != 1 {
				t.Errorf("headers lost: %+v", p.Headers)
			}
			if p.Text != "" || len(p.Attachments) != 0 {
				t.Errorf("body parsed despite the limit: Text=%q attachments=%d", p.Text, len(p.Attachments))
			}
			if len(p.Errors) != 1 || !p.Errors[0].Severe || p.Errors[0].Name != ErrNameLimit ||
				!strings.Contains(p.Errors[0].Detail, tt.detail) {
				t.Errorf("Errors = %+v, want one severe %q naming %s", p.Errors, ErrNameLimit, tt.detail)
			}
		})
	}
}

// treeShape measures what enmime built: the deepest nesting holding a part,
// the number of parts below the root, and whether enmime skipped any part
// it could not read (those are in the walk's count but not in the tree).
func treeShape(root *enmime.Part) (depth, parts int, skipped bool) {
	var walk func(p *enmime.Part, level int)
	walk = func(p *enmime.Part, level int) {
		for _, e := range p.Errors {
			if e.Name == enmime.ErrorMalformedChildPart && !strings.HasPrefix(e.Detail, "partial content") {
				skipped = true
			}
		}
		for c := p.FirstChild; c != nil; c = c.NextSibling {
			parts++
			depth = max(depth, level+1)
			walk(c, level+1)
		}
	}
	walk(root, 0)
	return depth, parts, skipped
}

// FuzzCheckShape holds the pre-scan to enmime's behaviour: the quick counts
// always bound what enmime builds; the walk, where it does not refuse,
// counts exactly what enmime builds; so whatever checkShape lets through,
// enmime parses into no deeper and no wider a tree.
func FuzzCheckShape(f *testing.F) {
	f.Add(nested(3))
	f.Add(nested(4))
	f.Add(flat(8))
	f.Add(flat(9))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\npre --a \r\n\r\n--a\r\nContent-Type: x/y; boundary=b\r\n\r\n--b\n--b\n--a--"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed;\n boundary=b\n--b\n\n--b--\n--a\n--a--\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\nX: 1\n\nline--a \n--a\n\n--a--\n"))
	f.Add([]byte("Subject: x\r\n \r\nContent-Type: Multipart/Mixed; boundary=a\r\n\r\n--a\r\n\r\nx\r\n--a--\r\n"))
	f.Add([]byte("\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\nx\r\n--a--\r\n"))
	const maxDepth, maxParts = 3, 8
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 1<<14 {
			return
		}
		parser := enmime.NewParser(
			enmime.SkipMalformedParts(true),
			enmime.MultipartWOBoundaryAsSinglePart(true),
			enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
		)
		root, err := parser.ReadParts(bytes.NewReader(raw))
		if err != nil {
			return
		}
		depth, parts, skipped := treeShape(root)
		if singlePart(raw) && (depth > 0 || parts > 1) {
			t.Fatalf("singlePart, but enmime built depth %d with %d parts", depth, parts)
		}

		if lines, dashes := shapeBounds(raw); depth > lines || parts > dashes {
			t.Fatalf("enmime built depth %d with %d parts, quick bounds %d and %d", depth, parts, lines, dashes)
		}
		if w, err := walkShape(raw, 1<<20, 1<<20); err == nil {
			exact := w.depth == depth && w.parts == parts
			bound := depth <= w.depth && parts <= w.parts
			if skipped && !bound || !skipped && !exact {
				t.Fatalf("enmime built depth %d with %d parts (skipped parts: %v), walk counted %d and %d",
					depth, parts, skipped, w.depth, w.parts)
			}
		}
		if checkShape(raw, maxDepth, maxParts) == nil && (depth > maxDepth || parts > maxParts) {
			t.Fatalf("checkShape passed, enmime built depth %d with %d parts (limits %d, %d)",
				depth, parts, maxDepth, maxParts)
		}
	})
}

// A line enmime takes for a delimiter though it does not start with one
// loses the bytes around it; the parse says so with a severe error.
func TestMisreadDelimiterReported(t *testing.T) {
	t.Parallel()
	misread := func(p *postern.Parsed) bool {
		return slices.ContainsFunc(p.Errors, func(e postern.ParseError) bool { return e.Name == ErrNameMisread && e.Severe })
	}
	bad := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx--b\r\nmore\r\n--b--\r\n")
	if p := Parse(bad, Config{}); !misread(p) {
		t.Errorf("no severe %q error: %+v", ErrNameMisread, p.Errors)
	}
	good := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b \r\n\r\nmore\r\n--b--\r\n")
	if p := Parse(good, Config{}); misread(p) || hasSevere(p.Errors) || len(p.Attachments) != 2 {
		t.Errorf("regular delimiters: %+v", p)
	}
}

func TestSplitHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, want string }{
		{"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n", "A: 1\r\nB: 2\r\n"},
		{"A: 1\n\nbody", "A: 1\n"},
		{"A: 1\r\n \r\nB: 2\r\n\r\nx", "A: 1\r\n \r\nB: 2\r\n"},
		{"\r\nbody", ""},
		{"\nbody", ""},
		{"A: 1\r\nno end", "A: 1\r\nno end"},
		{"", ""},
	} {
		if got := string(splitHeader([]byte(tc.raw))); got != tc.want {
			t.Errorf("splitHeader(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}
