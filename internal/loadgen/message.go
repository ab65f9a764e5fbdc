package loadgen

import (
	"encoding/base64"
	"fmt"
	"time"
)

// lineChars is the length of a body line before CRLF, as base64 bodies have.
const lineChars = 76

// bodyAlphabet is what body lines are made of. No line can start with '.',
// so a message goes out without dot-stuffing and its bytes on the wire are
// exactly its bytes in the store.
const bodyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// Template is a message body of a fixed size, built once and sent many
// times; each transaction adds its own small header (Header).
type Template struct {
	Size        int    // total bytes of Header plus Body, approximately
	Body        []byte // CRLF lines, ends with CRLF
	contentType string // the Content-Type field's value Header writes
}

// Message bodies: what the template's message is made of.
const (
	BodyText = "text" // one us-ascii text part (lines of the base64 alphabet)
	BodyPDF  = "pdf"  // a line of text and a base64 PDF attachment, as a scanner sends
)

// headerBytes is what Header adds, roughly, so that Size is about the size
// of the whole message.
const headerBytes = 240

// pdfBoundary separates the parts of a BodyPDF message.
const pdfBoundary = "loadgen-scan-boundary"

// NewTemplate returns a template for messages of about size bytes (at least
// one body line) of one text part.
func NewTemplate(size int) *Template {
	t, _ := NewTemplateOf(BodyText, size)
	return t
}

// NewTemplateOf returns a template for messages of about size bytes made of
// body (BodyText or BodyPDF).
func NewTemplateOf(body string, size int) (*Template, error) {
	switch body {
	case BodyText, "":
		return &Template{Size: size, Body: textLines(max(size-headerBytes, lineChars+2)), contentType: "text/plain; charset=us-ascii"}, nil
	case BodyPDF:
		head := "--" + pdfBoundary + "\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nScanned document attached.\r\n" +
			"--" + pdfBoundary + "\r\nContent-Type: application/pdf; name=\"scan0001.pdf\"\r\nContent-Transfer-Encoding: base64\r\n" +
			"Content-Disposition: attachment; filename=\"scan0001.pdf\"\r\n\r\n"
		tail := "--" + pdfBoundary + "--\r\n"
		// base64 lines of the PDF's bytes, which the parse stage decodes.
		n := max(size-headerBytes-len(head)-len(tail), lineChars+2)
		raw := make([]byte, (n/(lineChars+2))*lineChars/4*3+3)
		copy(raw, "%PDF-1.4\n")
		for i := 9; i < len(raw); i++ {
			raw[i] = byte(i*13) ^ byte(i>>9)
		}
		enc := base64.StdEncoding.EncodeToString(raw)
		body := append([]byte(head), make([]byte, 0, len(enc)+len(enc)/lineChars*2+len(tail)+2)...)
		for len(enc) > 0 {
			k := min(lineChars, len(enc))
			body = append(append(body, enc[:k]...), '\r', '\n')
			enc = enc[k:]
		}
		body = append(body, tail...)
		return &Template{Size: size, Body: body, contentType: "multipart/mixed; boundary=\"" + pdfBoundary + "\""}, nil
	}
	return nil, fmt.Errorf("message body %q: want %s or %s", body, BodyText, BodyPDF)
}

// textLines returns about n bytes of CRLF lines of the base64 alphabet.
func textLines(n int) []byte {
	lines := (n + lineChars + 1) / (lineChars + 2)
	body := make([]byte, 0, lines*(lineChars+2))
	for i := range lines {
		for j := range lineChars {
			body = append(body, bodyAlphabet[(i*7+j)%len(bodyAlphabet)])
		}
		body = append(body, '\r', '\n')
	}
	return body
}

// Header returns the header block (ending in the blank line) for one
// message. tag is put in the Subject and Message-ID so that a test can find
// the message again in a webhook payload.
func (t *Template) Header(from, to, tag string, now time.Time) []byte {
	ct := t.contentType
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: loadgen %s\r\nMessage-ID: <%s@loadgen.invalid>\r\n"+
		"Date: %s\r\nMIME-Version: 1.0\r\nContent-Type: %s\r\n\r\n",
		from, to, tag, tag, now.Format(time.RFC1123Z), ct)
}
