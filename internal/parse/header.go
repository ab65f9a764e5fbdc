package parse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/jhillyerd/enmime/v2"
	"github.com/postern/postern/internal/postern"
	"golang.org/x/text/encoding/htmlindex"
)

// The header block is read here rather than taken from enmime because enmime
// keeps headers in a map, losing their order, and because the headers must
// be delivered even when the body is too large, too deep, or unparseable.

// field is one header field as it appears in the message: its name and its
// unfolded, undecoded value.
type field struct {
	name  string
	value string
}

// splitHeader returns the header block of raw, up to and excluding the empty
// line that ends it. A message without an empty line is all header.
func splitHeader(raw []byte) []byte {
	end, _ := headerEnd(raw, 0, len(raw))
	return raw[:end]
}

// readFields splits a header block into fields, unfolding continuation lines.
// It is as forgiving as enmime: a line without a colon continues the previous
// field, and a line whose name holds invalid characters is dropped.
func readFields(block []byte) []field {
	var out []field
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
				out[len(out)-1].value += string(line)
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			if len(out) > 0 {
				out[len(out)-1].value += " " + string(line)
			}
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		if !validFieldName(name) {
			continue
		}
		out = append(out, field{name: string(name), value: string(line[colon+1:])})
	}
	for i := range out {
		out[i].value = strings.TrimSpace(out[i].value)
	}
	return out
}

// validFieldName follows RFC 5322: printable ASCII except ':'.
func validFieldName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
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

// decodeValue decodes encoded words; a value that does not decode is kept as
// it is. The result is always valid UTF-8.
func decodeValue(v string) string {
	if strings.Contains(v, "=?") {
		dec := mime.WordDecoder{CharsetReader: charsetReader}
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
	}
	return clean(v)
}

// headerFacts fills the header-derived fields of p from the raw header
// fields, and reports problems as warnings.
func headerFacts(p *postern.Parsed, fields []field) {
	p.Headers = make([]postern.Header, len(fields))
	for i, f := range fields {
		p.Headers[i] = postern.Header{Name: f.name, Value: decodeValue(f.value)}
	}
	for _, f := range fields {
		switch strings.ToLower(f.name) {
		case "from":
			p.From = append(p.From, addresses(p, f)...)
		case "sender":
			p.Sender = append(p.Sender, addresses(p, f)...)
		case "to":
			p.To = append(p.To, addresses(p, f)...)
		case "cc":
			p.Cc = append(p.Cc, addresses(p, f)...)
		case "reply-to":
			p.ReplyTo = append(p.ReplyTo, addresses(p, f)...)
		}
	}
	// Single-valued fields take their first occurrence, as mail readers do.
	if v, ok := first(fields, "Subject"); ok {
		p.Subject = decodeValue(v)
	}
	if v, ok := first(fields, "Date"); ok {
		d, err := mail.ParseDate(decodeValue(v))
		if err != nil {
			p.Errors = append(p.Errors, warning(enmime.ErrorMalformedHeader, fmt.Sprintf("Date: %v", err)))
		} else {
			p.Date = &d
		}
	}
	if v, ok := first(fields, "Message-ID"); ok {
		if ids := msgIDs(v); len(ids) > 0 {
			p.MessageID = ids[0]
		}
	}
	if v, ok := first(fields, "In-Reply-To"); ok {
		p.InReplyTo = msgIDs(v)
	}
	if v, ok := first(fields, "References"); ok {
		p.References = msgIDs(v)
	}
}

func first(fields []field, name string) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f.value, true
		}
	}
	return "", false
}

// addresses parses an address field with enmime's tolerant parser (which
// repairs missing commas and decodes encoded display names).
func addresses(p *postern.Parsed, f field) []postern.Address {
	list, err := enmime.ParseAddressList(f.value)
	if errors.Is(err, mail.ErrHeaderNotPresent) {
		return nil
	}
	if err != nil {
		p.Errors = append(p.Errors, warning(enmime.ErrorMalformedHeader, fmt.Sprintf("%s: %v", f.name, err)))
		return nil
	}
	out := make([]postern.Address, 0, len(list))
	for _, a := range list {
		out = append(out, postern.Address{
			Name:    clean(a.Name),
			Address: clean(a.Address),
		})
	}
	return out
}

// msgIDs extracts message ids without their angle brackets, the same form
// enmime gives Content-IDs. Values without brackets are split on white space.
func msgIDs(v string) []string {
	var ids []string
	rest := v
	for {
		open := strings.IndexByte(rest, '<')
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '>')
		if end < 0 {
			break
		}
		if id := strings.TrimSpace(rest[open+1 : open+end]); id != "" {
			ids = append(ids, clean(id))
		}
		rest = rest[open+end+1:]
	}
	if ids == nil {
		for _, id := range strings.Fields(v) {
			ids = append(ids, clean(id))
		}
	}
	return ids
}

// headerLookup returns the decoded values of a header by name (in any case),
// for route matching.
func headerLookup(hs []postern.Header) func(string) []string {
	byName := make(map[string][]string, len(hs))
	for _, h := range hs {
		k := strings.ToLower(h.Name)
		byName[k] = append(byName[k], h.Value)
	}
	return func(name string) []string { return byName[strings.ToLower(name)] }
}

// warning and severe make parse errors. Details often quote the message
// (enmime's do), so they are cleaned like any text from it.
func warning(name, detail string) postern.ParseError {
	return postern.ParseError{Name: name, Detail: clean(detail)}
}

func severe(name, detail string) postern.ParseError {
	return postern.ParseError{Name: name, Detail: clean(detail), Severe: true}
}
