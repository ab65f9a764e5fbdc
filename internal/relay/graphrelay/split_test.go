package graphrelay

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzPlan holds plan to its contract on any stored bytes: no panic, a
// reply when refused, and when not, a draft within the request limit and
// attachments that decode to the size Graph is told.
func FuzzPlan(f *testing.F) {
	att := "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Repeat("QUJDRA==\r\n", 60)
	f.Add([]byte("Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n" + att + att + "--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n" + att + "--b\r\nContent-Type: multipart/related; boundary=c\r\n\r\n--c\r\nContent-Id: <x>\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		strings.Repeat("a=3D=\r\n", 200) + "\r\n--c--\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: text/plain\r\n\r\n" + strings.Repeat("x", 2000)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		end := bytes.Index(raw, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		tr := &Transport{maxRequest: 1024, maxDraft: 768, maxTotal: 1 << 20, chunk: 320 << 10}
		p, r, ok := tr.plan(raw[:end+4], raw[end+4:])
		if !ok {
			if !r.Permanent() || r.Text == "" {
				t.Fatalf("refused with %v", r)
			}
			return
		}
		if len(p.mime) > tr.maxDraft {
			t.Fatalf("draft of %d bytes, limit %d", len(p.mime), tr.maxDraft)
		}
		for _, a := range p.atts {
			n, err := io.Copy(io.Discard, a.open())
			if err != nil || int(n) != a.size || a.name == "" {
				t.Fatalf("attachment %q decodes to %d bytes (%v), told %d", a.name, n, err, a.size)
			}
		}
	})
}
