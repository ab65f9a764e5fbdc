package dsn

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"
	enmimedsn "github.com/jhillyerd/enmime/v2/dsn"
)

// FuzzBuild feeds untrusted inputs (the original message, a remote
// diagnostic, the client's HELO, an address) to Build. Whatever they hold,
// a notice that builds must be valid on the wire, parse back as a report,
// and keep the untrusted text inside its one field.
func FuzzBuild(f *testing.F) {
	f.Add([]byte(testOriginal), "smtp; 550 5.1.1 no such user", "scanner", "invoices@example.com", true)
	f.Add([]byte("Subject: x\n\nbody\r\n.\r\n"), "smtp; 451 4.3.0 a\r\nBcc: b", "x\ny", "pelé@exämple.org", false)
	f.Add([]byte("no header at all"), "", "", "a@b", true)
	f.Add([]byte("A: \xff\xfe\r\n\r\n\x00"), strings.Repeat("word ", 300), "h", "a+b=c@x", false)
	f.Fuzz(func(t *testing.T, orig []byte, diag, helo, rcpt string, full bool) {
		r := baseReport()
		r.Original = orig
		r.ReceivedFromMTA = helo
		r.Recipients[0].Diagnostic = diag
		r.Recipients[0].Final = rcpt
		if full {
			r.Return = ReturnFull
		}
		m, err := Build(r)
		if err != nil {
			return // refused input is fine; what is built must be sound
		}
		for i, line := range bytes.Split(m.Bytes, []byte("\r\n")) {
			if bytes.ContainsAny(line, "\r\n") || len(line) > 998 {
				t.Fatalf("line %d not valid on the wire: %q", i+1, line)
			}
		}
		env, err := enmime.ReadEnvelope(bytes.NewReader(m.Bytes))
		if err != nil {
			t.Fatalf("enmime: %v", err)
		}
		if env.Root.Header.Get("Bcc") != "" {
			t.Fatal("untrusted text became a header")
		}
		rep, err := enmimedsn.ParseReport(env.Root)
		if err != nil || rep == nil {
			t.Fatalf("ParseReport = %v, %v", rep, err)
		}
		rs := rep.DeliveryStatus.RecipientDSNs
		if len(rs) != 1 {
			t.Fatalf("%d recipient blocks, want 1", len(rs))
		}
		if got, want := rs[0].Get("Diagnostic-Code"), cleanText(diag, maxFieldText); got != want {
			t.Fatalf("Diagnostic-Code = %q, want %q", got, want)
		}
		if rs[0].Get("Action") != "failed" || rs[0].Get("Status") != "5.1.1" {
			t.Fatalf("recipient block %v", rs[0])
		}
	})
}
