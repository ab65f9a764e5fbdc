package loadgen

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/parse"
)

// Both bodies make messages of about the size asked for that parse as
// what they claim to be: one text part, or a text line and a PDF.
func TestTemplates(t *testing.T) {
	t.Parallel()
	for _, size := range []int{10 << 10, 1 << 20} {
		for _, body := range []string{BodyText, BodyPDF} {
			tpl, err := NewTemplateOf(body, size)
			if err != nil {
				t.Fatal(err)
			}
			msg := append(tpl.Header("a@b.test", "c@d.test", "1-1", time.Unix(0, 0)), tpl.Body...)
			if d := len(msg) - size; d < -2*lineChars || d > 2*lineChars {
				t.Errorf("%s %d: message of %d bytes", body, size, len(msg))
			}
			if bytes.Contains(msg, []byte("\r\n.")) {
				t.Errorf("%s %d: a line starts with a dot (dot-stuffing would change the bytes)", body, size)
			}
			p := parse.Parse(msg, parse.Config{})
			if len(p.Errors) != 0 {
				t.Errorf("%s %d: parse errors %+v", body, size, p.Errors)
			}
			switch body {
			case BodyText:
				if len(p.Attachments) != 0 || len(p.Text) < size/2 {
					t.Errorf("text %d: %d attachments, %d bytes of text", size, len(p.Attachments), len(p.Text))
				}
			case BodyPDF:
				if len(p.Attachments) != 1 || p.Attachments[0].ContentType != "application/pdf" ||
					p.Attachments[0].Size < int64(size/2) || !strings.Contains(p.Text, "Scanned document") {
					t.Errorf("pdf %d: text %q, %d attachments", size, p.Text, len(p.Attachments))
				} else if a := p.Attachments[0]; a.Content != nil && !bytes.HasPrefix(a.Content, []byte("%PDF-")) {
					t.Errorf("pdf %d: the attachment starts %q", size, a.Content[:8])
				}
			}
		}
	}
	if _, err := NewTemplateOf("video", 1<<10); err == nil {
		t.Error("an unknown body was taken")
	}
}
