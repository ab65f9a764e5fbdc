package postern

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ParsedVersion is the current schema version of Parsed.
const ParsedVersion = 1

// Parsed is the parsed form of a message, written by the parse stage as JSON
// beside the raw message and read by the delivery stages. Header addresses
// (From, To, ...) and envelope addresses stay apart: the envelope is kept
// whole in Envelope, never merged into them.
type Parsed struct {
	V  int   `json:"v"`
	ID MsgID `json:"id"`

	// Envelope is the ParseJob's envelope. On AWS the gateway writes no
	// envelope.json (the queued ParseJob is what makes it durable before
	// 250, one S3 PUT fewer per message), so this copy is what keeps the
	// archive enough to replay the message; readers of envelope.json fall
	// back to it. Absent in parsed forms written before it existed.
	Envelope *Envelope `json:"envelope,omitempty"`

	// Headers in the order they appear, values decoded (RFC 2047) where
	// decoding succeeded.
	Headers []Header `json:"headers"`

	From       []Address  `json:"from,omitempty"`
	Sender     []Address  `json:"sender,omitempty"`
	To         []Address  `json:"to,omitempty"`
	Cc         []Address  `json:"cc,omitempty"`
	ReplyTo    []Address  `json:"reply_to,omitempty"`
	Subject    string     `json:"subject"`
	Date       *time.Time `json:"date,omitempty"`
	MessageID  string     `json:"message_id,omitempty"`
	InReplyTo  []string   `json:"in_reply_to,omitempty"`
	References []string   `json:"references,omitempty"`

	// Text and HTML bodies, decoded to UTF-8. Text is derived from HTML when
	// the message has no text part (TextDerived). Truncated flags say a body
	// was cut at the inline cap; the raw message still has all of it.
	Text          string `json:"text"`
	HTML          string `json:"html"`
	TextDerived   bool   `json:"text_derived,omitempty"`
	TextTruncated bool   `json:"text_truncated,omitempty"`
	HTMLTruncated bool   `json:"html_truncated,omitempty"`
	// TextRaw, when set, says the text is bytes [start, end) of the raw
	// message as stored (raw.eml), and Text is empty: on one machine parse
	// sets it for a large single text/plain part of 7-bit text, which is
	// its own text, so parsed.json holds no second copy of it. Readers
	// take the text from there (ReadTextRaw).
	TextRaw *[2]int64 `json:"text_raw,omitempty"`

	Attachments []Attachment `json:"attachments"`

	// Errors are problems the parser met; Severe ones mean the structure above
	// may be incomplete. The message is delivered all the same.
	Errors []ParseError `json:"errors"`

	// Auth is the sender-authentication verdicts; absent in parsed forms
	// written before the parse stage checked them.
	Auth *Auth `json:"auth,omitempty"`
	// AuthResults is the Authentication-Results value the outgoing view
	// starts with (see WebhookJob.AuthResults), kept so that a replay to a
	// route sends what the first delivery sent; empty for trusted mail.
	AuthResults string `json:"auth_results,omitempty"`
}

// Header is one header field.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Address is a parsed mailbox.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Attachment describes one attachment or inline part. Small ones carry their
// bytes (Content, base64 in JSON); large ones are stored under Key.
type Attachment struct {
	Filename     string `json:"filename"`
	ContentType  string `json:"content_type"`
	DetectedType string `json:"detected_type,omitempty"` // sniffed from the bytes
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	ContentID    string `json:"content_id,omitempty"`
	Disposition  string `json:"disposition,omitempty"` // attachment | inline
	Content      []byte `json:"content,omitempty"`
	Key          string `json:"key,omitempty"`
}

// ParseError is one problem found while parsing.
type ParseError struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
	Severe bool   `json:"severe"`
}

// ReadTextRaw reads the text a TextRaw span names from raw, the raw
// message as stored, read from its start.
func ReadTextRaw(raw io.Reader, span [2]int64) (string, error) {
	if err := SeekTextRaw(raw, span); err != nil {
		return "", err
	}
	// Read straight into the string's memory: up to 1 MiB, copied once.
	var b strings.Builder
	b.Grow(int(span[1] - span[0]))
	if _, err := io.CopyN(&b, raw, span[1]-span[0]); err != nil {
		return "", TextRawShort(span, err)
	}
	return b.String(), nil
}

// SeekTextRaw moves raw, the raw message as stored read from its start, to
// where a TextRaw span begins, for a reader that takes the span's
// span[1]-span[0] bytes itself; TextRawShort describes their ending early.
func SeekTextRaw(raw io.Reader, span [2]int64) error {
	if span[0] < 0 || span[1] < span[0] {
		return fmt.Errorf("text_raw %v is not a span", span)
	}
	if s, ok := raw.(io.Seeker); ok {
		if _, err := s.Seek(span[0], io.SeekStart); err != nil {
			return fmt.Errorf("text_raw: %w", err)
		}
	} else if _, err := io.CopyN(io.Discard, raw, span[0]); err != nil {
		return fmt.Errorf("text_raw: the raw message ends before %d: %w", span[0], err)
	}
	return nil
}

// TextRawShort is the error for a raw message that ends inside span.
func TextRawShort(span [2]int64, err error) error {
	return fmt.Errorf("text_raw: the raw message ends before %d: %w", span[1], err)
}
