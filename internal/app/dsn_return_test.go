package app_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/jhillyerd/enmime/v2"
)

// dsn.max_return_bytes reaches the dsn stage: with RET=FULL, an original
// within it comes back whole (message/rfc822), a larger one as its header
// only (text/rfc822-headers, RFC 3461 section 4.3).
func TestDSNReturnFullIsCappedByConfig(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("scan line 0123456789\r\n", 20) // 440 bytes
	for name, c := range map[string]struct {
		max  int64
		want string
	}{
		"within": {1 << 20, "message/rfc822"},
		"over":   {256, "text/rfc822-headers"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, hs := newHook(t)
			h.status = 410
			cfg := testConfig(t, hs.URL)
			cfg.Identities[0].AllowedSenders = []string{"*@lan.example"}
			cfg.DSN.MaxReturnBytes = c.max
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a := boot(t, cfg)
			sendFull(t, a.SMTPAddrs()[0].String(), "scanner@lan.example", "gone@app.test",
				"From: scanner@lan.example\r\nSubject: full return\r\n\r\n"+body)
			dir := filepath.Join(cfg.DataDir, cfg.DSN.Relay.Path)
			notices := waitFor(t, func() []string { return dsnFiles(dir) })
			raw, err := os.ReadFile(filepath.Join(dir, notices[0]))
			if err != nil {
				t.Fatal(err)
			}
			env, err := enmime.ReadEnvelope(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for p := env.Root.FirstChild; p != nil; p = p.NextSibling {
				types = append(types, p.ContentType)
			}
			if len(types) != 3 || types[2] != c.want {
				t.Fatalf("notice parts %v, want the third to be %s", types, c.want)
			}
			returnedBody := strings.Contains(string(raw), "scan line 0123456789")
			if returnedBody != (c.want == "message/rfc822") {
				t.Errorf("body returned: %v, want %v", returnedBody, c.want == "message/rfc822")
			}
			if !strings.Contains(string(raw), "Subject: full return") {
				t.Error("the original's header is not in the notice")
			}
		})
	}
}

// sendFull delivers msg to one recipient with RET=FULL.
func sendFull(t *testing.T, addr, from, to, msg string) {
	t.Helper()
	if _, err := sendWith(t, addr, from, &smtp.MailOptions{Return: smtp.DSNReturnFull}, []string{to}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}
