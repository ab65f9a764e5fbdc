package parse

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/postern/postern/internal/postern"
)

// FuzzParse feeds arbitrary bytes through Parse: it must not panic, must
// always produce JSON that reads back, and must keep its promises about
// limits and bodies.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"latin1-qp.eml", "rfc822-attachment.eml", "malformed.eml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(nested(4))
	f.Add(flat(12))
	f.Add([]byte("this is not a header\r\n\r\nbody"))
	f.Add([]byte("Subject: =?utf-8?q?=C3=A9?=\r\nContent-Type: text/html\r\n\r\n<p>x</p>"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--x--"))
	cfg := Config{BodyInlineMax: 256, MaxDepth: 4, MaxParts: 16, MaxMessageBytes: 1 << 16}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := Parse(raw, cfg)
		if p.V != postern.ParsedVersion || p.Errors == nil || p.Attachments == nil {
			t.Fatalf("incomplete result: %+v", p)
		}
		if len(p.Text) > cfg.BodyInlineMax || len(p.HTML) > cfg.BodyInlineMax {
			t.Fatalf("bodies over the cap: %d, %d", len(p.Text), len(p.HTML))
		}
		if len(p.Errors) > maxErrors+1 {
			t.Fatalf("%d errors listed", len(p.Errors))
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back postern.Parsed
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		if len(back.Headers) != len(p.Headers) || back.Subject != p.Subject || back.Text != p.Text {
			t.Fatalf("JSON does not round-trip")
		}
	})
}
