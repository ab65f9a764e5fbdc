package parse

import (
	"context"
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
			id, _, body := hs.submit(t, raw, "archive@example.com") // a directory route: the webhook queue
			if err := hs.h.Handle(context.Background(), postern.Job{Body: body, Attempt: 1}); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			wh := hs.wh.sent()
			if len(wh) != 1 {
				t.Fatalf("webhook jobs = %d, want 1", len(wh))
			}
			job := decode[postern.WebhookJob](t, wh[0])
			stored := hs.store.object(t, id.ParsedKey())
			switch {
			case tc.inline && string(job.Parsed) != string(stored):
				t.Errorf("inline parsed form (%d bytes) is not parsed.json (%d bytes)", len(job.Parsed), len(stored))
			case !tc.inline && len(job.Parsed) != 0:
				t.Errorf("a %d-byte parsed form travels inline, want by reference only", len(stored))
			}
			if len(wh[0]) > postern.MaxInlineParsed+16<<10 {
				t.Errorf("job of %d bytes", len(wh[0]))
			}
		})
	}
}
