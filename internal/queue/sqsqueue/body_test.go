package sqsqueue

import (
	"bytes"
	"encoding/base64"
	"testing"
)

func TestSQSText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want bool
	}{
		{"", true},
		{`{"v":1,"s":"Grüße ✓"}`, true},
		{"tab\tcr\rlf\n", true},
		{"\uD7FF\uE000\uFFFD", true}, // the edges of the ranges, and U+FFFD itself
		{"nul\x00", false},
		{"\x1f", false},
		{"\x7f", true}, // DEL is an XML character
		{"\uFFFE", false},
		{"\uFFFF", false},
		{"🚀", false},            // above U+FFFF: allowed by SQS's documentation, refused by fauxqs
		{"\xed\xa0\x80", false}, // an encoded surrogate is not UTF-8
		{"\xff", false},
		{"ok\xc3", false}, // truncated sequence
	}
	for _, c := range cases {
		if got := sqsText([]byte(c.in)); got != c.want {
			t.Errorf("sqsText(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestDecodeBody(t *testing.T) {
	t.Parallel()
	if b, err := DecodeBody("plain", ""); err != nil || string(b) != "plain" {
		t.Errorf(`DecodeBody(plain, "") = %q, %v`, b, err)
	}
	if b, err := DecodeBody("AP8=", EncodingBase64); err != nil || !bytes.Equal(b, []byte{0, 0xff}) {
		t.Errorf("DecodeBody(AP8=, base64) = %q, %v", b, err)
	}
	if _, err := DecodeBody("AP8", EncodingBase64); err == nil {
		t.Error("DecodeBody of unpadded base64 returned nil")
	}
	if _, err := DecodeBody("x", "gzip"); err == nil {
		t.Error("DecodeBody with an unknown encoding returned nil")
	}
}

// FuzzBodyRoundTrip: whatever the bytes, the encoded body is one SQS takes
// and decodes to the same bytes.
func FuzzBodyRoundTrip(f *testing.F) {
	for _, s := range []string{"{}", "\x00", "\xff\xfe", "🚀", "\uFFFE", "a\r\nb"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		text, attrs := encodeBody(b)
		var enc string
		if a, ok := attrs[BodyEncodingAttribute]; ok {
			enc = *a.StringValue
		}
		if !sqsText([]byte(text)) {
			t.Fatalf("encoded body %q is not one SQS takes", text)
		}
		if enc == "" && text != string(b) {
			t.Fatalf("unmarked body %q differs from %q", text, b)
		}
		if enc != "" && text != base64.StdEncoding.EncodeToString(b) {
			t.Fatalf("base64 body %q for %q", text, b)
		}
		got, err := DecodeBody(text, enc)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("DecodeBody = %q, %v; want %q", got, err, b)
		}
	})
}
