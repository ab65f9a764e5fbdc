package route

import (
	"errors"
	"strings"

	"github.com/postern/postern/internal/mailheader"
	"github.com/postern/postern/internal/postern"
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
	block, ok := mailheader.Block(raw)
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
// message with this header (both read it with package mailheader).
func DecodeHeader(block []byte) []postern.Header {
	fields := mailheader.Fields(block)
	out := make([]postern.Header, len(fields))
	for i, f := range fields {
		out[i] = postern.Header{Name: f.Name, Value: mailheader.Decode(f.Value)}
	}
	return out
}
