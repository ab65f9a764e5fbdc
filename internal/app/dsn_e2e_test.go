package app_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"
)

// A webhook that refuses for good (410) ends in a delivery status
// notification to the envelope sender, sent from the null sender, with the
// failed recipient and the original headers, and nothing is retried.
func TestPermanentWebhookFailureSendsDSN(t *testing.T) {
	t.Parallel()
	h, hs := newHook(t)
	h.status = 410
	cfg := testConfig(t, hs.URL)
	cfg.Identities[0].AllowedSenders = []string{"*@lan.example"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan.example", []string{"gone@app.test"},
		[]byte("From: scanner@lan.example\r\nSubject: weekly report\r\nMessage-ID: <r1@lan.example>\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")

	dir := filepath.Join(cfg.DataDir, cfg.DSN.Relay.Path)
	var raw []byte
	deadline := time.Now().Add(30 * time.Second)
	for raw == nil {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".eml") && !strings.HasPrefix(e.Name(), ".") {
				raw, _ = os.ReadFile(filepath.Join(dir, e.Name()))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no DSN written under %s", dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := string(raw)
	if !strings.HasPrefix(s, "X-Postern-Envelope-From: <>\r\nX-Postern-Envelope-To: <scanner@lan.example>\r\n") {
		t.Fatalf("DSN envelope wrong:\n%s", s[:min(len(s), 300)])
	}
	env, err := enmime.ReadEnvelope(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if ct := env.GetHeader("Content-Type"); !strings.Contains(ct, "multipart/report") || !strings.Contains(ct, "delivery-status") {
		t.Errorf("content type %q", ct)
	}
	if env.GetHeader("Auto-Submitted") != "auto-replied" || !strings.HasPrefix(env.GetHeader("From"), "MAILER-DAEMON@") && !strings.Contains(env.GetHeader("From"), "<MAILER-DAEMON@") {
		t.Errorf("headers: Auto-Submitted=%q From=%q", env.GetHeader("Auto-Submitted"), env.GetHeader("From"))
	}
	for _, want := range []string{"Final-Recipient: rfc822; gone@app.test", "Action: failed", "Status: 5.", "Subject: weekly report", id} {
		if !strings.Contains(s, want) {
			t.Errorf("DSN lacks %q", want)
		}
	}
	time.Sleep(500 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reqs) != 1 {
		t.Errorf("a permanent failure was retried: %d requests", len(h.reqs))
	}
}
