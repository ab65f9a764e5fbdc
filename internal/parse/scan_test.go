package parse

import (
	"bytes"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// delimLines.scan takes runs in one step; fed the same bytes in any
// chunks, it must end in exactly the state byte-by-byte feeding reaches.
func TestDelimLinesScanMatchesByteByByte(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const boundary = "b-1"
	pieces := []string{"-", "--", "--b-1", "--b-1--", "\r\n", "\n", "\r", " ", "\t", "x", "QUJD", "b", "1", strings.Repeat("A", 80)}
	for i := range 3000 {
		var in bytes.Buffer
		for range rng.IntN(40) {
			in.WriteString(pieces[rng.IntN(len(pieces))])
		}
		data := in.Bytes()
		want := newDelimLines(nil, boundary)
		for _, c := range data {
			want.byte(c)
		}
		got := newDelimLines(nil, boundary)
		for rest := data; len(rest) > 0; {
			k := 1 + rng.IntN(len(rest))
			got.scan(rest[:k])
			rest = rest[k:]
		}
		if !reflect.DeepEqual(normal(got), normal(want)) {
			t.Fatalf("case %d %q: scan state %+v, byte-by-byte %+v", i, data, *got, *want)
		}
	}
}

// normal makes an empty line buffer compare equal whatever its capacity.
func normal(d *delimLines) delimLines {
	c := *d
	c.r = nil
	if len(c.line) == 0 {
		c.line = nil
	}
	return c
}

// The filter keeps exactly the base64 alphabet, drops white space and '='
// silently, and reports anything else.
func TestBase64FilterClasses(t *testing.T) {
	t.Parallel()
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	f := &base64Filter{r: bytes.NewReader(all)}
	out, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	// The alphabet in byte order, as the input has it.
	if want := "+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"; string(out) != want {
		t.Errorf("kept %q, want %q", out, want)
	}
	if got := len(f.stray) + f.extra; got != 256-64-5 {
		t.Errorf("reported %d stray bytes, want %d", got, 256-64-5)
	}
}
