package parse

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/jhillyerd/enmime/v2"
	"github.com/postern/postern/internal/mailheader"
	"github.com/postern/postern/internal/postern"
)

// The header block is read here rather than taken from enmime because enmime
// keeps headers in a map, losing their order, and because the headers must
// be delivered even when the body is too large, too deep, or unparseable.

// splitHeader returns the header block of raw, up to and excluding the empty
// line that ends it. A message without an empty line is all header.
func splitHeader(raw []byte) []byte {
	end, _ := headerEnd(raw, 0, len(raw))
	return raw[:end]
}

// headerFacts fills the header-derived fields of p from the raw header
// fields, and reports problems as warnings.
func headerFacts(p *postern.Parsed, fields []mailheader.Field) {
	p.Headers = make([]postern.Header, len(fields))
	for i, f := range fields {
		p.Headers[i] = postern.Header{Name: f.Name, Value: mailheader.Decode(f.Value)}
	}
	for _, f := range fields {
		switch strings.ToLower(f.Name) {
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
		p.Subject = mailheader.Decode(v)
	}
	if v, ok := first(fields, "Date"); ok {
		d, err := mail.ParseDate(mailheader.Decode(v))
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

func first(fields []mailheader.Field, name string) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// addresses parses an address field with enmime's tolerant parser (which
// repairs missing commas and decodes encoded display names).
func addresses(p *postern.Parsed, f mailheader.Field) []postern.Address {
	list, err := enmime.ParseAddressList(f.Value)
	if errors.Is(err, mail.ErrHeaderNotPresent) {
		return nil
	}
	if err != nil {
		p.Errors = append(p.Errors, warning(enmime.ErrorMalformedHeader, fmt.Sprintf("%s: %v", f.Name, err)))
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

// warning and severe make parse errors. Details often quote the message
// (enmime's do), so they are cleaned like any text from it.
func warning(name, detail string) postern.ParseError {
	return postern.ParseError{Name: name, Detail: clean(detail)}
}

func severe(name, detail string) postern.ParseError {
	return postern.ParseError{Name: name, Detail: clean(detail), Severe: true}
}
