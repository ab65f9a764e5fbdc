package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/postern/postern/internal/postern"
)

// URLs turns store keys into links an application can fetch (for example
// pre-signed S3 URLs). Links are made afresh on every attempt, so one that
// expires is renewed by the retry.
type URLs interface {
	URL(ctx context.Context, key string) (string, error)
}

// buildReceived maps the parsed message and the job to the public payload.
// Every key is always there: slices are never nil so receivers see arrays,
// not nulls, and absent values are "" (payload.go).
func buildReceived(ctx context.Context, job *postern.WebhookJob, p *postern.Parsed, urls URLs) (*ReceivedEvent, error) {
	env := &job.Envelope
	d := Received{
		V:        PayloadVersion,
		ID:       job.ID,
		Route:    job.Route,
		Identity: env.Identity,
		Envelope: Envelope{Sender: env.Sender, Recipients: nonNil(job.Recipients), Listener: env.Listener},

		From:       addresses(p.From),
		To:         addresses(p.To),
		Cc:         addresses(p.Cc),
		ReplyTo:    addresses(p.ReplyTo),
		Subject:    p.Subject,
		Sender:     addresses(p.Sender),
		MessageID:  p.MessageID,
		InReplyTo:  nonNil(p.InReplyTo),
		References: nonNil(p.References),
		Headers:    make([]Header, len(p.Headers)),

		Text:          p.Text,
		HTML:          p.HTML,
		TextDerived:   p.TextDerived,
		TextTruncated: p.TextTruncated,
		HTMLTruncated: p.HTMLTruncated,

		Attachments: make([]Attachment, len(p.Attachments)),
		Raw:         Raw{Key: job.ID.RawKey(), Size: env.Size, SHA256: env.SHA256},
		ParseErrors: make([]ParseError, len(p.Errors)),
		Client: Client{
			IP:         env.ClientIP,
			HELO:       env.HELO,
			AuthMech:   env.AuthMech,
			Identity:   env.Identity,
			ReceivedAt: env.ReceivedAt.UTC(),
		},
		Auth: payloadAuth(p.Auth),
	}
	if p.Date != nil {
		d.Date = p.Date.Format(time.RFC3339Nano)
	}
	if env.TLS != nil {
		d.Client.TLS = TLS{Version: env.TLS.Version, Cipher: env.TLS.Cipher}
	}
	for i, h := range p.Headers {
		d.Headers[i] = Header(h)
	}
	for i, e := range p.Errors {
		d.ParseErrors[i] = ParseError(e)
	}
	for i, a := range p.Attachments {
		att := Attachment{
			Filename:     a.Filename,
			ContentType:  a.ContentType,
			DetectedType: a.DetectedType,
			Size:         a.Size,
			SHA256:       a.SHA256,
			ContentID:    a.ContentID,
			Disposition:  a.Disposition,
			Content:      nonNilBytes(a.Content),
			Key:          a.Key,
		}
		if a.Key != "" && urls != nil {
			u, err := urls.URL(ctx, a.Key)
			if err != nil {
				return nil, fmt.Errorf("link attachment %d: %w", i, err)
			}
			att.URL = u
		}
		d.Attachments[i] = att
	}
	if urls != nil {
		u, err := urls.URL(ctx, d.Raw.Key)
		if err != nil {
			return nil, fmt.Errorf("link raw message: %w", err)
		}
		d.Raw.URL = u
	}
	return &ReceivedEvent{Type: EventReceived, Timestamp: eventTime(job), Data: d}, nil
}

// eventTime is when the message was received, to the second: it does not
// change between retries, so neither does the body apart from fresh links.
func eventTime(job *postern.WebhookJob) time.Time {
	t := job.Envelope.ReceivedAt
	if t.IsZero() {
		t = job.Created
	}
	return t.UTC().Truncate(time.Second)
}

func addresses(in []postern.Address) []Address {
	out := make([]Address, len(in))
	for i, a := range in {
		out[i] = Address(a)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// parsedBodies is the parse stage's output with its two bodies left as the
// JSON strings parse wrote, each up to 1 MiB: the payload takes them as
// they are (encodeReceived) instead of an unquote and an escape of each.
// The embedded Parsed's Text and HTML stay empty (the outer fields win).
type parsedBodies struct {
	postern.Parsed
	Text json.RawMessage `json:"text"`
	HTML json.RawMessage `json:"html"`
	// Attachments keep their inline content as the base64 JSON strings
	// parse wrote, for the same reason; inParsed gives them to
	// buildReceived without it.
	Attachments []storedAttachment `json:"attachments"`
}

// storedAttachment is an attachment of parsed.json with its content left
// encoded.
type storedAttachment struct {
	postern.Attachment
	Content json.RawMessage `json:"content,omitempty"`
}

// inParsed sets p.Parsed.Attachments to the attachments without their
// content and returns the contents, encoded, in the same order.
func (p *parsedBodies) inParsed() (contents []json.RawMessage) {
	p.Parsed.Attachments = make([]postern.Attachment, len(p.Attachments))
	contents = make([]json.RawMessage, len(p.Attachments))
	for i, a := range p.Attachments {
		p.Parsed.Attachments[i] = a.Attachment
		p.Parsed.Attachments[i].Content = nil
		contents[i] = a.Content
	}
	return contents
}

// bodiesMark is what json.Marshal writes for a Received whose bodies are
// empty. Only a key can look like this: inside JSON strings every quote is
// escaped, and Received has one "text" and one "html" key.
var bodiesMark = []byte(`"text":"","html":"",`)

// contentMark is what json.Marshal writes for an attachment without
// content; only attachments have a "content" key, one each.
var contentMark = []byte(`"content":""`)

// encodeReceived is json.Marshal(ev) with ev.Data's bodies set to text and
// html, and the content of attachment i to contents[i] (when not empty),
// all JSON strings as json.Marshal writes them (parse writes parsed.json
// with it): the bytes are those Marshal would give.
func encodeReceived(ev *ReceivedEvent, text, html json.RawMessage, contents []json.RawMessage) ([]byte, error) {
	out, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	if out, err = spliceContents(out, contents); err != nil {
		return nil, err
	}
	if len(text) == 0 && len(html) == 0 {
		return out, nil
	}
	if !isJSONString(text) || !isJSONString(html) {
		return nil, fmt.Errorf("encode payload: the stored text or html is not a JSON string")
	}
	i := bytes.Index(out, bodiesMark)
	if i < 0 || bytes.Index(out[i+1:], bodiesMark) >= 0 {
		return nil, fmt.Errorf("encode payload: the bodies' place is not where Received puts it")
	}
	if len(text) == 0 {
		text = json.RawMessage(`""`)
	}
	if len(html) == 0 {
		html = json.RawMessage(`""`)
	}
	b := make([]byte, 0, len(out)+len(text)+len(html))
	b = append(b, out[:i]...)
	b = append(b, `"text":`...)
	b = append(b, text...)
	b = append(b, `,"html":`...)
	b = append(b, html...)
	b = append(b, ',')
	return append(b, out[i+len(bodiesMark):]...), nil
}

// spliceContents puts each non-empty contents[i] in place of the i-th
// attachment's empty content in out.
func spliceContents(out []byte, contents []json.RawMessage) ([]byte, error) {
	n := 0
	for _, c := range contents {
		if len(c) > 0 {
			if !isJSONString(c) {
				return nil, fmt.Errorf("encode payload: a stored attachment content is not a JSON string")
			}
			n += len(c)
		}
	}
	if n == 0 {
		return out, nil
	}
	if bytes.Count(out, contentMark) != len(contents) {
		return nil, fmt.Errorf("encode payload: the attachments' content is not where Received puts it")
	}
	b := make([]byte, 0, len(out)+n)
	rest := out
	for _, c := range contents {
		i := bytes.Index(rest, contentMark)
		b = append(b, rest[:i]...)
		if len(c) == 0 {
			b = append(b, contentMark...)
		} else {
			b = append(b, `"content":`...)
			b = append(b, c...)
		}
		rest = rest[i+len(contentMark):]
	}
	return append(b, rest...), nil
}

// isJSONString reports whether b is empty or looks like a JSON string: the
// decoder has checked it is one JSON value, so its first byte says which.
func isJSONString(b json.RawMessage) bool { return len(b) == 0 || b[0] == '"' }
