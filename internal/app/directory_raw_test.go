package app_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/apispec"
	"github.com/postern/postern/internal/webhook"
)

// A directory route with payload: raw writes each copy's envelope beside
// it, so the application learns whom a Bcc copy was for: the recipient is
// in the envelope only.
func TestDirectoryRawBccEnvelope(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Routes[0].Directory.Payload = "raw"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	msg := []byte("From: scanner@lan.example\r\nTo: Team <team@files.test>\r\nSubject: blind copy\r\n\r\nbody\r\n")
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan.example", []string{"auditor@files.test"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(reply, "OK ")
	dir := filepath.Join(cfg.DataDir, "outbox")
	eml := filepath.Join(dir, id+".files.eml")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(eml); err == nil {
			break
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(dir)
			t.Fatalf("no message at %s (dir has %v)", eml, entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Whoever sees the .eml finds the envelope already written.
	b, err := os.ReadFile(filepath.Join(dir, id+".files"+webhook.EnvelopeFileExt))
	if err != nil {
		t.Fatalf("no envelope beside the message: %v", err)
	}
	var env webhook.RawEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	if err := apispec.ValidateEnvelope(b); err != nil {
		t.Error(err)
	}
	if string(env.ID) != id || env.Route != "files" || env.Sender != "scanner@lan.example" ||
		!slices.Equal(env.Recipients, []string{"auditor@files.test"}) || env.Identity != "local" || env.Listener != "smtp" {
		t.Errorf("envelope %s", b)
	}
	raw, err := os.ReadFile(eml)
	if err != nil || !bytes.HasSuffix(raw, msg) {
		t.Errorf("message file: %v; want the message as sent, after the gateway's Received field", err)
	}
}
