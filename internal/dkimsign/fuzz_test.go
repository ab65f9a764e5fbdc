package dkimsign

import (
	"bytes"
	"io"
	"testing"

	"github.com/postern/postern/internal/crlf"
	"github.com/postern/postern/internal/dkimsign/dkimsigntest"
)

// FuzzSign: the message comes from the network (a device), so whatever it
// holds, Sign must not fail or panic, must send exactly the bytes crlf
// makes of it (plus the line ends that close a header left open) after its
// own fields, and a signature it makes must verify.
func FuzzSign(f *testing.F) {
	for _, s := range []string{
		lfMessage,
		deviceMessage,
		"From: a@example.com\r\n\r\nbody\r\n",
		"From: a@example.com",
		"From: a@example.com\rSubject: x\r\r\nbody",
		"Subject: x\nFrom: =?utf-8?b?w7w=?= <a@sub.example.com>\n\n.\n",
		"From: a@example.com\n\tfolded\nno colon here\n\nbody\n",
		"\r\nFrom: a@example.com\r\n",
		"From: a@example.com\nDKIM-Signature: v=1; broken\n\nx",
		"From: <a@example.com>\nSubject: \x00\xff\n\n\x00",
	} {
		f.Add([]byte(s))
	}
	sel := Selector{"example.com", "fz", edKey()}
	s, err := NewSigner([]Selector{sel}, Options{MemoryLimit: 4 << 10})
	if err != nil {
		f.Fatal(err)
	}
	recs := records(sel)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 1<<16 {
			return
		}
		m, err := s.Sign(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		out, err := io.ReadAll(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := crlf.Append(nil, raw)
		if m.Domain == "" {
			if !bytes.Equal(out, want) {
				t.Fatalf("unsigned message changed:\n%q\n%q", raw, out)
			}
			return
		}
		if m.Size != int64(len(out)) {
			t.Fatalf("Size %d for %d bytes", m.Size, len(out))
		}
		i := bytes.Index(out, want)
		if i < 0 || !bytes.HasPrefix(out, []byte("DKIM-Signature: ")) {
			t.Fatalf("sent %q for %q", out, raw)
		}
		if extra := out[i+len(want):]; len(extra) > 4 || bytes.Count(extra, []byte("\r\n"))*2 != len(extra) {
			t.Fatalf("added %q after the message", extra)
		}
		vs := dkimsigntest.VerifyGo(t, out, recs)
		if len(vs) == 0 || vs[0].Err != nil {
			t.Fatalf("own signature fails: %+v\n%q", vs, out)
		}
	})
}
