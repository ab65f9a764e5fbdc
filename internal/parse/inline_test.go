package parse

import (
	"strings"
	"testing"

	"github.com/postern/postern/internal/postern"
)

// A webhook job carries the parsed form inline up to MaxInlineParsed bytes
// and only the reference above, so a job always fits in an SQS message.
func TestWebhookJobCarriesSmallParsedFormOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		text   int
		inline bool
	}{
		{"small", 1 << 10, true},
		{"over the bound", postern.MaxInlineParsed + 1<<10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t, testRules)
			raw := []byte("Subject: scan\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("scan line\r\n", tc.text/11+1))
			id, job := hs.handleOne(t, raw, "archive@example.com") // a directory route: the webhook queue
			stored := hs.store.object(t, id.ParsedKey())
			switch {
			case tc.inline && string(job.Parsed) != string(stored):
				t.Errorf("inline parsed form (%d bytes) is not parsed.json (%d bytes)", len(job.Parsed), len(stored))
			case !tc.inline && len(job.Parsed) != 0:
				t.Errorf("a %d-byte parsed form travels inline, want by reference only", len(stored))
			}
			if n := len(hs.wh.sent()[0]); n > postern.MaxInlineParsed+16<<10 {
				t.Errorf("job of %d bytes", n)
			}
		})
	}
}
