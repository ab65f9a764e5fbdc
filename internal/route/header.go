package route

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/postern/postern/internal/postern"
	"golang.org/x/text/encoding/htmlindex"
)

// The header values rules match on are decoded here, once, so that the
// gateway (deciding at the end of DATA) and the parse stage (deciding after
// the 250) see the same values and reach the same decision.

// ErrHeaderIncomplete is returned by HeaderLookup for bytes that hold no
// empty line, so the end of the header is not among them.
var ErrHeaderIncomplete = errors.New("route: no empty line ends the header block")

// HeaderLookup returns the decoded values of each header field in raw, for
// Meta.Header and AcceptsMessage. raw is the message's header block up to
// and including the empty line that ends it; bytes after that line (the
// body) are ignored, so the whole message will do too.
//
// The values are the parse stage's: for raw holding the whole header, the
// lookup answers exactly as FieldLookup(p.Headers) does for the parsed
// message p. The parse stage reads the message as stored, so the gateway
// passes the header it stores: its own Received field first, then the
// client's. Names match case-insensitively; repeated fields give several
// values in message order; folded lines are unfolded; RFC 2047 encoded words
// are decoded in any charset the WHATWG encoding index knows; values are
// valid UTF-8 without NUL.
//
// Without an empty line in raw it returns ErrHeaderIncomplete: a cut header
// would lack fields the parse stage sees. (The parse stage treats a message
// that has no empty line at all as all header; a caller holding such a whole
// message may append "\r\n\r\n" to say so.)
func HeaderLookup(raw []byte) (func(name string) []string, error) {
	block, ok := headerBlock(raw)
	if !ok {
		return nil, ErrHeaderIncomplete
	}
	return FieldLookup(DecodeHeader(block)), nil
}

// FieldLookup returns the values of the named header among hs, matching the
// name case-insensitively, in their order. The parse stage routes with it on
// the parsed message's headers.
func FieldLookup(hs []postern.Header) func(name string) []string {
	byName := make(map[string][]string, len(hs))
	for _, h := range hs {
		k := strings.ToLower(h.Name)
		byName[k] = append(byName[k], h.Value)
	}
	return func(name string) []string { return byName[strings.ToLower(name)] }
}

// DecodeHeader returns the fields of a header block in order, values
// unfolded, trimmed and decoded: the parse stage's Parsed.Headers for a
// message with this header. It is as forgiving as the parse stage: a line
// without a colon continues the previous field, a field whose name is not
// printable ASCII is dropped, and an encoded word that does not decode is
// kept as written.
func DecodeHeader(block []byte) []postern.Header {
	var out []postern.Header
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
		if !validHeaderName(string(name)) {
			continue
		}
		out = append(out, postern.Header{Name: string(name), Value: string(line[colon+1:])})
	}
	for i := range out {
		out[i].Value = decodeHeaderValue(strings.TrimSpace(out[i].Value))
	}
	return out
}

// headerBlock returns raw up to (excluding) the empty line that ends the
// header, and whether there is one. An empty line is "\n" or "\r\n" at the
// start of raw or after a "\n".
func headerBlock(raw []byte) ([]byte, bool) {
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

// decodeHeaderValue decodes encoded words; a value that does not decode is
// kept as it is. The result is valid UTF-8 without NUL (either becomes
// U+FFFD).
func decodeHeaderValue(v string) string {
	if strings.Contains(v, "=?") {
		dec := mime.WordDecoder{CharsetReader: charsetReader}
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
	}
	v = strings.ToValidUTF8(v, "\uFFFD")
	if strings.IndexByte(v, 0) >= 0 {
		v = strings.ReplaceAll(v, "\x00", "\uFFFD")
	}
	return v
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
