package parse

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus and testdata/golden from the generator and Parse")

const (
	corpusDir = "testdata/corpus"
	goldenDir = "testdata/golden"
)

// goldenHeaderMax bounds the headers a golden lists: the 10,000-line
// message would otherwise make a golden of half a megabyte. The count of
// the rest is kept, and the test checks the count separately.
const goldenHeaderMax = 50

// golden is what a golden file holds: Parse's output with the caller-set
// id zeroed and attachment bytes left out (their size and SHA-256 stay).
type golden struct {
	*postern.Parsed
	HeadersOmitted int `json:"golden_headers_omitted,omitempty"`
}

func goldenJSON(t *testing.T, p *postern.Parsed) []byte {
	t.Helper()
	c := *p
	c.ID = ""
	c.Attachments = slices.Clone(p.Attachments)
	for i := range c.Attachments {
		c.Attachments[i].Content = nil
	}
	g := golden{Parsed: &c}
	if n := len(c.Headers); n > goldenHeaderMax {
		c.Headers = c.Headers[:goldenHeaderMax]
		g.HeadersOmitted = n - goldenHeaderMax
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// The corpus files are what the generator makes; -update rewrites them.
func TestCorpusUpToDate(t *testing.T) {
	t.Parallel()
	msgs := corpus(t)
	names := map[string]bool{}
	for _, m := range msgs {
		names[m.name+".eml"] = true
		path := filepath.Join(corpusDir, m.name+".eml")
		if *update {
			if err := os.MkdirAll(corpusDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, m.raw, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run Corpus -update)", err)
		}
		if !bytes.Equal(got, m.raw) {
			t.Errorf("%s differs from the generator (run go test -run Corpus -update)", path)
		}
	}
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !names[filepath.Base(f)] && !*update {
			t.Errorf("%s is not made by the generator", f)
		}
	}
}

// Every corpus message parses to its golden, and to the facts the
// generator states about it.
func TestCorpusGolden(t *testing.T) {
	t.Parallel()
	for _, m := range corpus(t) {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			raw := m.raw
			if !*update {
				var err error
				if raw, err = os.ReadFile(filepath.Join(corpusDir, m.name+".eml")); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			p := Parse(raw, Config{})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Parse took %v", d)
			}
			checkWant(t, p, m.want)

			got := goldenJSON(t, p)
			path := filepath.Join(goldenDir, m.name+".json")
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run Corpus -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Parse(%s) differs from %s (run go test -run Corpus -update and review the diff):\n%s",
					m.name, path, firstDiff(string(want), string(got)))
			}
		})
	}
}

func checkWant(t *testing.T, p *postern.Parsed, w corpusWant) {
	t.Helper()
	if p.Subject != w.subject {
		t.Errorf("Subject = %q, want %q", p.Subject, w.subject)
	}
	if w.fromName != "" && (len(p.From) != 1 || p.From[0].Name != w.fromName) {
		t.Errorf("From = %+v, want name %q", p.From, w.fromName)
	}
	if !strings.Contains(p.Text, w.text) {
		t.Errorf("Text = %q, want it to hold %q", p.Text, w.text)
	}
	if !strings.Contains(p.HTML, w.html) {
		t.Errorf("HTML = %q, want it to hold %q", p.HTML, w.html)
	}
	if p.TextDerived != w.derived {
		t.Errorf("TextDerived = %v, want %v", p.TextDerived, w.derived)
	}
	var names, types, cids []string
	for _, a := range p.Attachments {
		names = append(names, a.Filename)
		types = append(types, a.ContentType)
		cids = append(cids, a.ContentID)
		if a.Size != int64(len(a.Content)) || a.SHA256 != sha(a.Content) {
			t.Errorf("attachment %q: size %d / sha256 %s do not describe its %d bytes", a.Filename, a.Size, a.SHA256, len(a.Content))
		}
	}
	if w.files != nil && !slices.Equal(names, w.files) && !(len(names) == 0 && len(w.files) == 0) {
		t.Errorf("attachment names = %q, want %q", names, w.files)
	}
	if w.types != nil && !slices.Equal(types, w.types) {
		t.Errorf("attachment types = %q, want %q", types, w.types)
	}
	if w.cids != nil && !slices.Equal(cids, w.cids) {
		t.Errorf("attachment Content-IDs = %q, want %q", cids, w.cids)
	}
	if hasSevere(p.Errors) != w.severe {
		t.Errorf("severe errors: %v, want %v: %+v", hasSevere(p.Errors), w.severe, p.Errors)
	}
	if w.errName != "" && !slices.ContainsFunc(p.Errors, func(e postern.ParseError) bool { return e.Name == w.errName }) {
		t.Errorf("Errors = %+v, want one named %q", p.Errors, w.errName)
	}
	if w.headers != 0 && len(p.Headers) != w.headers {
		t.Errorf("%d headers, want %d", len(p.Headers), w.headers)
	}
}

// firstDiff shows the first differing line of two texts, with its number.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return "(no line differs)"
}
