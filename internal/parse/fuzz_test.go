package parse

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/postern"
)

// Bounds on one Parse call, whatever the input: time, and bytes allocated
// as a fixed allowance plus a multiple of the input's size. Parse measures
// about 0.2 MB fixed (charset tables) and at most ~50 bytes per input byte
// (a header of 100,000 addresses); a blow-up that is quadratic in the
// input, or that follows a declared size rather than the bytes present,
// goes far past these.
const (
	parseTimeBound    = 20 * time.Second // generous: -race and a loaded 2-core CI machine; real blow-ups take minutes
	parseAllocFixed   = 4 << 20
	parseAllocPerByte = 100
	fuzzSeedMaxLen    = 64 << 10
)

// parseBounded runs Parse and fails t if it takes longer or allocates more
// than the bounds above. Allocation is measured process-wide, so callers
// must not run beside other tests (fuzz workers run one input at a time).
func parseBounded(t *testing.T, raw []byte, cfg Config) *postern.Parsed {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	p := Parse(raw, cfg)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if took > parseTimeBound {
		t.Errorf("Parse of %d bytes took %v", len(raw), took)
	}
	if alloc, bound := after.TotalAlloc-before.TotalAlloc, uint64(parseAllocFixed+parseAllocPerByte*len(raw)); alloc > bound {
		t.Errorf("Parse of %d bytes allocated %d bytes, bound %d", len(raw), alloc, bound)
	}
	return p
}

// FuzzParse feeds arbitrary bytes through Parse: it must not panic, must
// always produce JSON that reads back, and must keep its promises about
// limits and bodies.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, filepath.Join("testdata", "latin1-qp.eml"), filepath.Join("testdata", "rfc822-attachment.eml"), filepath.Join("testdata", "malformed.eml"))
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= fuzzSeedMaxLen { // large seeds slow every mutation
			f.Add(b)
		}
	}
	for _, b := range fuzzParseSeeds() {
		f.Add(b)
	}
	for _, c := range extraCases() {
		f.Add([]byte(c.raw))
	}
	cfg := Config{BodyInlineMax: 256, MaxDepth: 4, MaxParts: 16, MaxMessageBytes: 1 << 16}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := parseBounded(t, raw, cfg)
		if p.V != postern.ParsedVersion || p.Errors == nil || p.Attachments == nil {
			t.Fatalf("incomplete result: %+v", p)
		}
		if len(p.Text) > cfg.BodyInlineMax || len(p.HTML) > cfg.BodyInlineMax {
			t.Fatalf("bodies over the cap: %d, %d", len(p.Text), len(p.HTML))
		}
		if len(p.Errors) > maxErrors+1 {
			t.Fatalf("%d errors listed", len(p.Errors))
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back postern.Parsed
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		if len(back.Headers) != len(p.Headers) || back.Subject != p.Subject || back.Text != p.Text {
			t.Fatalf("JSON does not round-trip")
		}
		if bytes.Contains(b, []byte(`\u0000`)) {
			t.Fatalf("JSON carries a NUL")
		}
	})
}

// fuzzParseSeeds are FuzzParse's seeds besides the message files.
func fuzzParseSeeds() [][]byte {
	return [][]byte{
		nested(4),
		flat(12),
		[]byte("this is not a header\r\n\r\nbody"),
		[]byte("Subject: =?utf-8?q?=C3=A9?=\r\nContent-Type: text/html\r\n\r\n<p>x</p>"),
		[]byte("Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--x--"),
	}
}

// Hostile shapes stay within the time and allocation bounds, with the
// default limits and with tight ones. Not parallel: allocation is measured
// process-wide.
func TestParseHostileInputsBounded(t *testing.T) {
	inputs := map[string][]byte{
		"deep nesting":    nested(20000),
		"wide":            flat(100000),
		"10k headers":     []byte(strings.Repeat("Received: by relay.example\r\n", 10000) + "Subject: x\r\n\r\nbody"),
		"one long header": []byte("Subject: " + strings.Repeat("=?utf-8?q?a?= ", 70000) + "\r\n\r\nx"),
		"many addresses":  []byte("To: " + strings.Repeat("a@b, ", 100000) + "\r\n\r\nx"),
		"no header end":   bytes.Repeat([]byte("X: y\r\n"), 200000),
		"1 MiB body":      append([]byte("Content-Type: text/plain\r\n\r\n"), bytes.Repeat([]byte("x"), 1<<20)...),
		"NULs":            bytes.Repeat([]byte{0}, 1<<20),
	}
	for name, raw := range inputs {
		t.Run(name, func(t *testing.T) {
			for _, cfg := range []Config{{}, {BodyInlineMax: 256, MaxDepth: 4, MaxParts: 16, MaxMessageBytes: 1 << 16}} {
				if p := parseBounded(t, raw, cfg); p.V != postern.ParsedVersion {
					t.Errorf("incomplete result")
				}
			}
		})
	}
}
