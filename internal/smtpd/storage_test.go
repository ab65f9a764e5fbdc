package smtpd

import (
	"log/slog"
	"sync/atomic"
	"testing"
)

// TestStorageLowRefusesMail: while StorageLow says so, MAIL is answered
// 452 4.3.1 before anything is received, and mail flows again once it
// clears, in the same session.
func TestStorageLowRefusesMail(t *testing.T) {
	t.Parallel()
	var low atomic.Bool
	low.Store(true)
	cfg := testConfig()
	cfg.StorageLow = low.Load
	ing := &fakeIngest{}
	srv := New(cfg, loopback(), routerFunc(func(string, string, string) bool { return true }), ing,
		slog.New(slog.NewJSONHandler(testLogWriter{t}, nil)))
	d := dial(t, serve(t, srv))
	d.must("EHLO x", "250")
	d.must("MAIL FROM:<ok@lan>", "452 4.3.1 Insufficient system storage")
	d.must("RCPT TO:<app@example.com>", "503")

	low.Store(false)
	d.must("MAIL FROM:<ok@lan>", "250")
	d.must("RCPT TO:<app@example.com>", "250")
	d.must("DATA", "354")
	d.must("Subject: x\r\n\r\nbody\r\n.", "250 2.0.0 OK ")
	d.must("QUIT", "221")
	if len(ing.Envs()) != 1 {
		t.Fatalf("stored %d messages, want 1", len(ing.Envs()))
	}
}
