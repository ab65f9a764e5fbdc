package notify_test

import (
	"strings"
	"testing"

	"github.com/postern/postern/internal/relay/relaytest"
)

// A notice about an original with bare CR and bare LF reaches a server that
// refuses any line end but CRLF, and returns the original with its line ends
// made CRLF (RET=FULL) or its header section so (RET=HDRS).
func TestNoticeAboutBareLineEndsGoesOutAsCRLF(t *testing.T) {
	t.Parallel()
	const raw = "From: scanner@lan.example\nTo: invoices@example.com\r\r\nSubject: scan\r\n\r\nPAGE\rONE\n\r.\rBODY\r"
	const sent = "From: scanner@lan.example\r\nTo: invoices@example.com\r\nSubject: scan\r\n\r\nPAGE\r\nONE\r\n\r\n.\r\nBODY\r\n"
	for _, ret := range []string{"FULL", "HDRS"} {
		t.Run(ret, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, relaytest.Options{StrictLineEnds: true})
			if err := f.store.Put(t.Context(), testID.RawKey(), strings.NewReader(raw), nil); err != nil {
				t.Fatal(err)
			}
			f.job.Envelope.Ret = ret
			if err := f.handle(t, f.handler(t), 1); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			txs := f.srv.Txs()
			if len(txs) != 1 {
				t.Fatalf("%d notices accepted, want 1", len(txs))
			}
			_, rep, parts := readNotice(t, txs[0].Data)
			if ret == "FULL" {
				eq(t, "returned message", string(rep.OriginalMessage), sent)
				return
			}
			hp := parts["text/rfc822-headers"]
			if hp == nil {
				t.Fatalf("no headers part: %v", parts)
			}
			eq(t, "returned headers", string(hp.Content), sent[:strings.Index(sent, "\r\n\r\n")+2])
		})
	}
}
