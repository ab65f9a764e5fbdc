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

func FuzzAppend(f *testing.F) {
	for _, s := range cases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Append(nil, s), marshal(t, s); !bytes.Equal(got, want) {
			t.Fatalf("Append(%q) = %s, want %s", s, got, want)
		}
	})
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
