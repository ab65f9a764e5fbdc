package loadgen

import (
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
	Size int    // total bytes of Header plus Body, approximately
	Body []byte // CRLF lines, ends with CRLF
}

// headerBytes is what Header adds, roughly, so that Size is about the size
// of the whole message.
const headerBytes = 240

// NewTemplate returns a template for messages of about size bytes (at least
// one body line).
func NewTemplate(size int) *Template {
	n := max(size-headerBytes, lineChars+2)
	lines := (n + lineChars + 1) / (lineChars + 2)
	body := make([]byte, 0, lines*(lineChars+2))
	for i := range lines {
		for j := range lineChars {
			body = append(body, bodyAlphabet[(i*7+j)%len(bodyAlphabet)])
		}
		body = append(body, '\r', '\n')
	}
	return &Template{Size: size, Body: body}
}

// Header returns the header block (ending in the blank line) for one
// message. tag is put in the Subject and Message-ID so that a test can find
// the message again in a webhook payload.
func (t *Template) Header(from, to, tag string, now time.Time) []byte {
	return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: loadgen %s\r\nMessage-ID: <%s@loadgen.invalid>\r\n"+
		"Date: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		from, to, tag, tag, now.Format(time.RFC1123Z))
}
