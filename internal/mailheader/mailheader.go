// Package mailheader reads a message's header block the one way Postern
// reads it everywhere: fields in order, unfolded, RFC 2047 decoded. The
// gateway (routing at the end of DATA) and the parse stage share it, so
// both see the same values.
package mailheader

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
)

// Field is one header field as it appears in the message: its name and its
// unfolded, trimmed, undecoded value.
type Field struct {
	Name  string
	Value string
}

// Block returns raw up to (excluding) the empty line that ends the header,
// and whether there is one. An empty line is "\n" or "\r\n" at the start of
// raw or after a "\n".
func Block(raw []byte) ([]byte, bool) {
	for pos := 0; pos < len(raw); {
		line := raw[pos:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if string(line) == "\n" || string(line) == "\r\n" {
			return raw[:pos], true
		}
		pos += len(line)
	}
	return raw, false
}

// Fields splits a header block into fields, unfolding continuation lines.
// It is as forgiving as enmime: a line without a colon continues the
// previous field, and a line whose name is not a field name is dropped.
func Fields(block []byte) []Field {
	var out []Field
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(out) > 0 {
				out[len(out)-1].Value += string(line)
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			if len(out) > 0 {
				out[len(out)-1].Value += " " + string(line)
			}
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		if !ValidName(string(name)) {
			continue
		}
		out = append(out, Field{Name: string(name), Value: string(line[colon+1:])})
	}
	for i := range out {
		out[i].Value = strings.TrimSpace(out[i].Value)
	}
	return out
}

// ValidName follows RFC 5322 field-name: printable ASCII except ':'.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// Decode decodes encoded words; a value that does not decode is kept as it
// is. The result is valid UTF-8 without NUL (either becomes U+FFFD).
func Decode(v string) string {
	if strings.Contains(v, "=?") {
		dec := mime.WordDecoder{CharsetReader: charsetReader}
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
	}
	return Clean(v)
}

// Clean makes s valid UTF-8 without NUL.
func Clean(s string) string {
	// ValidString checks eight ASCII bytes at a time; ToValidUTF8 walks
	// rune by rune even when there is nothing to replace.
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}

// charsetReader lets RFC 2047 decoding handle any charset the WHATWG
// encoding index knows (the labels mail clients actually use).
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("charset %q: %w", charset, err)
	}
	return enc.NewDecoder().Reader(input), nil
}
