package jsonstr

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func marshal(t testing.TB, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var cases = []string{
	"", "a", "plain ascii text of some length, more than eight bytes",
	"line one\r\nline two\r\n", "tab\there", "\b\f\x00\x01\x1f\x7f",
	`quote " and backslash \ inside`, "<script>alert('x')</script> & more",
	"caf\u00e9 \u4e16\u754c \U0001F600", "\u2028 and \u2029 separators",
	"bad \xff utf-8 \xc3", "\xe2\x80", "12345678<", "1234567\xe2\x80\xa8tail",
	strings.Repeat("x", 7) + "\n" + strings.Repeat("y", 9),
	"\x1f\x20\x21\x22\x5b\x5c\x5d\x7f\x80", "!!!!!!!!\x00", "\x00!!!!!!!",
}

func TestAppendMatchesMarshal(t *testing.T) {
	for _, s := range cases {
		if got, want := Append(nil, s), marshal(t, s); !bytes.Equal(got, want) {
			t.Errorf("Append(%q) = %s, want %s", s, got, want)
		}
	}
	// Every byte value at every place in a word, among plain bytes, alone
	// and after a byte that borrows (below 0x20).
	for b := range 256 {
		for pos := range 17 {
			for _, before := range []string{"", "\x01", "<"} {
				s := strings.Repeat("a", pos) + before + string([]byte{byte(b)}) + strings.Repeat("b", 16-pos)
				if got, want := Append(nil, s), marshal(t, s); !bytes.Equal(got, want) {
					t.Fatalf("%q: Append = %s, want %s", s, got, want)
				}
			}
		}
	}
	// Random text of mostly plain bytes, appended after earlier bytes.
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("abcdefgh \r\n\t\"\\<>&\x00\x1f\x7f\xc3\xa9\xe2\x80\xa8\xff")
	for range 5000 {
		b := make([]byte, r.IntN(200))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = 0x20 + byte(r.IntN(0x5f))
			}
		}
		prefix := []byte(`{"text":`)
		got := Append(bytes.Clone(prefix), string(b))
		if want := append(prefix, marshal(t, string(b))...); !bytes.Equal(got, want) {
			t.Fatalf("Append(%q) = %s, want %s", b, got, want)
		}
	}
}

// Bytes encode as the same string does, and 7-bit text written in pieces
// of any sizes as it does whole.
func TestAppendBytesAndPieces(t *testing.T) {
	for _, s := range cases {
		if got, want := Append(nil, []byte(s)), marshal(t, s); !bytes.Equal(got, want) {
			t.Errorf("Append([]byte(%q)) = %s, want %s", s, got, want)
		}
	}
	text := []byte(bodyText(5000) + "<tab>\t & \"quoted\" \\ \x01\r")
	want := marshal(t, string(text))
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		got := []byte{'"'}
		for rest := text; len(rest) > 0; {
			k := min(len(rest), 1+r.IntN(100))
			got = AppendContent(got, rest[:k])
			rest = rest[k:]
		}
		got = append(got, '"')
		if !bytes.Equal(got, want) {
			t.Fatalf("in pieces:\n%s\nwant\n%s", got, want)
		}
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range cases {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, cut int) {
		want := marshal(t, s)
		if got := Append(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("Append(%q) = %s, want %s", s, got, want)
		}
		if got := Append(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Fatalf("Append([]byte(%q)) = %s, want %s", s, got, want)
		}
		// Two pieces, cut anywhere in 7-bit text.
		if cut < 0 || cut > len(s) || !isASCII(s) {
			return
		}
		got := AppendContent([]byte{'"'}, s[:cut])
		got = append(AppendContent(got, s[cut:]), '"')
		if !bytes.Equal(got, want) {
			t.Fatalf("%q cut at %d: %s, want %s", s, cut, got, want)
		}
	})
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// bodyText is a mail body: 74-character lines of words, CRLF-ended.
func bodyText(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString("The quick brown fox jumps over the lazy dog; scanned page 0001 of 0042.\r\n")
	}
	return b.String()[:n]
}

// BenchmarkAppend compares with what the stages used before: a
// json.Encoder writing into a buffer.
func BenchmarkAppend(b *testing.B) {
	s := bodyText(1 << 20)
	b.Run("jsonstr", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		buf := make([]byte, 0, len(s)*2)
		for b.Loop() {
			buf = Append(buf[:0], s)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		var buf bytes.Buffer
		buf.Grow(len(s) * 2)
		enc := json.NewEncoder(&buf)
		for b.Loop() {
			buf.Reset()
			enc.Encode(s)
		}
	})
}
