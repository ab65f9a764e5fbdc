package crlf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

var cases = []struct {
	name, in, want string
}{
	{"empty", "", ""},
	{"no line end", "abc", "abc"},
	{"CRLF kept", "a\r\nb\r\n", "a\r\nb\r\n"},
	{"empty lines kept", "a\r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n\r\n"},
	{"bare LF", "a\nb\n", "a\r\nb\r\n"},
	{"LF LF is two line ends", "h: v\n\nbody", "h: v\r\n\r\nbody"},
	{"bare CR", "a\rb\r", "a\r\nb\r\n"},
	{"CR at EOF", "a\r", "a\r\n"},
	{"CR alone", "\r", "\r\n"},
	{"LF alone", "\n", "\r\n"},
	{"CR CR LF is one line end", "a\r\r\nb", "a\r\nb"},
	{"CR run is one line end", "a\r\r\rb", "a\r\nb"},
	{"CR run then LF at EOF", "a\r\r\r\n", "a\r\n"},
	{"LF CR is two line ends", "a\n\rb", "a\r\n\r\nb"},
	{"CRLF then bare LF", "a\r\n\nb", "a\r\n\r\nb"},
	{"CRLF CR", "a\r\n\rb", "a\r\n\r\nb"},
	{"smuggling CR", "x\r.\r\nMAIL FROM:<a@b>\r\n", "x\r\n.\r\nMAIL FROM:<a@b>\r\n"},
	{"smuggling LF", "x\n.\nRCPT TO:<a@b>\n", "x\r\n.\r\nRCPT TO:<a@b>\r\n"},
	{"other controls kept", "a\x00\tb\x7f\xff\r\n", "a\x00\tb\x7f\xff\r\n"},
}

// readers are the ways a Reader is driven: whole, one byte at a time from
// its source (every CR ends a Read, its LF starts the next), and into a
// one-byte buffer (a CRLF never fits).
var readers = map[string]func(string) ([]byte, error){
	"whole": func(s string) ([]byte, error) { return io.ReadAll(NewReader(strings.NewReader(s))) },
	"one byte in": func(s string) ([]byte, error) {
		return io.ReadAll(NewReader(iotest.OneByteReader(strings.NewReader(s))))
	},
	"one byte out": func(s string) ([]byte, error) {
		return io.ReadAll(iotest.OneByteReader(NewReader(strings.NewReader(s))))
	},
	"half reads": func(s string) ([]byte, error) {
		return io.ReadAll(iotest.HalfReader(NewReader(iotest.HalfReader(strings.NewReader(s)))))
	},
	"append": func(s string) ([]byte, error) { return Append(nil, []byte(s)), nil },
}

func TestConvert(t *testing.T) {
	t.Parallel()
	for _, c := range cases {
		for how, read := range readers {
			got, err := read(c.in)
			if err != nil || string(got) != c.want {
				t.Errorf("%s, %s: %q -> %q, %v; want %q", c.name, how, c.in, got, err, c.want)
			}
		}
	}
}

// A CR that ends one chunk of the source and the LF that starts the next
// are one line end; so are a CR run and its LF split over chunks.
func TestChunkBoundary(t *testing.T) {
	t.Parallel()
	for _, parts := range [][]string{
		{"a\r", "\nb"},
		{"a\r", "\r", "\nb"},
		{"a\r\r", "\r\nb"},
		{"a\r", "", "\nb"},
	} {
		readers := make([]io.Reader, len(parts))
		for i, p := range parts {
			readers[i] = strings.NewReader(p)
		}
		got, err := io.ReadAll(NewReader(io.MultiReader(readers...)))
		if err != nil || string(got) != "a\r\nb" {
			t.Errorf("%q -> %q, %v; want %q", parts, got, err, "a\r\nb")
		}
	}
}

// The Reader's source failure reaches its caller unchanged, after the
// bytes read before it.
func TestSourceErrorPassesThrough(t *testing.T) {
	t.Parallel()
	boom := errors.New("store gone")
	r := NewReader(io.MultiReader(strings.NewReader("a\nb\r"), iotest.ErrReader(boom)))
	got, err := io.ReadAll(r)
	if !errors.Is(err, boom) || string(got) != "a\r\nb\r\n" {
		t.Fatalf("ReadAll = %q, %v; want %q, %v", got, err, "a\r\nb\r\n", boom)
	}
	if n, err := r.Read(make([]byte, 8)); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("Read after failure = %d, %v", n, err)
	}
	got, err = io.ReadAll(NewReader(iotest.DataErrReader(strings.NewReader("x\ny"))))
	if err != nil || string(got) != "x\r\ny" {
		t.Fatalf("data with EOF: %q, %v", got, err)
	}
}

func TestAppendKeepsDst(t *testing.T) {
	t.Parallel()
	if got := Append([]byte("pre:"), []byte("a\nb")); string(got) != "pre:a\r\nb" {
		t.Fatalf("Append = %q", got)
	}
}

// checkInvariant is what the fuzz target asserts: out has CRLF line ends
// only, and differs from in only in line ends.
func checkInvariant(in, out []byte) error {
	for i, c := range out {
		if c == '\r' && (i+1 == len(out) || out[i+1] != '\n') {
			return fmt.Errorf("bare CR at %d", i)
		}
		if c == '\n' && (i == 0 || out[i-1] != '\r') {
			return fmt.Errorf("bare LF at %d", i)
		}
	}
	if a, b := stripLineEnds(in), stripLineEnds(out); !bytes.Equal(a, b) {
		return fmt.Errorf("text other than line ends changed: %q -> %q", a, b)
	}
	return nil
}

func stripLineEnds(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return out
}

// The invariant check itself must catch each kind of violation, or the
// fuzz target could never fail.
func TestCheckInvariantCatchesViolations(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, out string }{
		{"a\rb", "a\rb"},
		{"a\nb", "a\nb"},
		{"a\n", "a\n\r"},
		{"ab", "a\r\nc"},
		{"ab", "a"},
		{"a\r\nb", "a\r\n"},
	} {
		if checkInvariant([]byte(c.in), []byte(c.out)) == nil {
			t.Errorf("checkInvariant(%q, %q) found nothing wrong", c.in, c.out)
		}
	}
	if err := checkInvariant([]byte("a\r\r\nb\n"), []byte("a\r\nb\r\n")); err != nil {
		t.Errorf("valid conversion refused: %v", err)
	}
}

// reference is the rule of the package comment written as plainly as
// possible, for the fuzz target to compare with.
func reference(in []byte) []byte {
	var out []byte
	for i := 0; i < len(in); {
		switch in[i] {
		case '\r':
			for i < len(in) && in[i] == '\r' {
				i++
			}
			if i < len(in) && in[i] == '\n' {
				i++
			}
			out = append(out, '\r', '\n')
		case '\n':
			i++
			out = append(out, '\r', '\n')
		default:
			out = append(out, in[i])
			i++
		}
	}
	return out
}

func FuzzNormalize(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.in), uint8(0))
	}
	f.Add([]byte("x\r"), uint8(1))
	f.Add(bytes.Repeat([]byte("line\r\r\n.\r\n\n\r"), 300), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		out := Append(nil, in)
		if err := checkInvariant(in, out); err != nil {
			t.Fatalf("%.80q -> %.80q: %v", in, out, err)
		}
		if want := reference(in); !bytes.Equal(out, want) {
			t.Fatalf("%.80q -> %.80q, the rule gives %.80q", in, out, want)
		}
		// The Reader, fed and drained in small uneven pieces, must agree.
		src := &chunkReader{b: in, n: int(chunk%16) + 1}
		got, err := io.ReadAll(&chunkReader{r: NewReader(src), n: int(chunk/16) + 1})
		if err != nil || !bytes.Equal(got, out) {
			t.Fatalf("Reader in chunks of %d/%d: %.80q, %v; Append gives %.80q", chunk%16+1, chunk/16+1, got, err, out)
		}
	})
}

// chunkReader reads at most n bytes at a time, from b or from r.
type chunkReader struct {
	b []byte
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), c.n)]
	if c.r != nil {
		return c.r.Read(p)
	}
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.b)
	c.b = c.b[n:]
	return n, nil
}

// benchMessage is about 1 MiB of mail: 76-character lines, CRLF or LF.
func benchMessage(eol string) []byte {
	line := strings.Repeat("abcdefghij", 7) + "012345" + eol
	return bytes.Repeat([]byte(line), (1<<20)/len(line))
}

func BenchmarkNormalize(b *testing.B) {
	for _, c := range []struct{ name, eol string }{{"CRLF", "\r\n"}, {"LF", "\n"}, {"CR", "\r"}} {
		msg := benchMessage(c.eol)
		b.Run("Reader/"+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			buf := make([]byte, 32<<10)
			for b.Loop() {
				r := NewReader(bytes.NewReader(msg))
				for {
					_, err := r.Read(buf)
					if err == io.EOF {
						break
					}
				}
			}
		})
	}
	msg := benchMessage("\r\n")
	b.Run("Append/CRLF", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		var dst []byte
		for b.Loop() {
			dst = Append(dst[:0], msg)
		}
	})
}
