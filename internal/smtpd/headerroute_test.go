package smtpd

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/postern/postern/internal/route"
)

// A recipient taken at RCPT only because a header route might want it is
// settled at the end of DATA: when the header leaves no recipient routed,
// the message is refused there and nothing is stored.
func TestHeaderRoutesDecideAtEndOfData(t *testing.T) {
	t.Parallel()
	table, err := route.New([]route.Rule{
		{Name: "alarms", Recipients: []string{"alarm@*"}, Headers: map[string]string{"X-Priority": "1*"}, Target: route.Target{Kind: route.KindWebhook}},
		{Name: "by-trace", Recipients: []string{"trace@*"}, Headers: map[string]string{"Received": "*(Postern)*"}, Target: route.Target{Kind: route.KindWebhook}},
		{Name: "scans", Recipients: []string{"scans@*"}, Target: route.Target{Kind: route.KindWebhook}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ing := &fakeIngest{}
	srv := New(testConfig(), loopback(), table, ing, slog.New(slog.NewJSONHandler(testLogWriter{t}, nil)))
	addr := serve(t, srv)
	d := dial(t, addr)
	d.must("EHLO x", "250")
	send := func(rcpts []string, msg, want string) {
		t.Helper()
		d.must("MAIL FROM:<panel@lan>", "250")
		for _, r := range rcpts {
			d.must("RCPT TO:<"+r+">", "250")
		}
		d.must("DATA", "354")
		d.must(msg+"\r\n.", want)
	}
	d.must("MAIL FROM:<panel@lan>", "250")
	d.must("RCPT TO:<other@example.com>", "550 5.1.1") // no rule at all: refused at RCPT
	d.must("RSET", "250")

	send([]string{"alarm@example.com"}, "X-Priority: 3\r\nSubject: low\r\n\r\nbody", "550 5.7.1")
	send([]string{"alarm@example.com"}, "X-Priority: 1 (Highest)\r\nSubject: high\r\n\r\nbody", "250 2.0.0 OK")
	// Mixed: one recipient routed, so the message is taken (the other is
	// bounced by the parse stage).
	send([]string{"alarm@example.com", "scans@example.com"}, "Subject: scan\r\n\r\nbody", "250 2.0.0 OK")
	// A message without a body is all header.
	send([]string{"alarm@example.com"}, "X-Priority: 1", "250 2.0.0 OK")
	send([]string{"alarm@example.com"}, "Subject: none", "550 5.7.1")
	// The gateway's own Received field is part of the header routed on,
	// as the parse stage sees it in the stored message.
	send([]string{"trace@example.com"}, "Subject: t\r\n\r\nbody", "250 2.0.0 OK")
	// Encoded words are decoded as the parse stage decodes them.
	send([]string{"alarm@example.com"}, "X-Priority: =?utf-8?q?1_urgent?=\r\n\r\nbody", "250 2.0.0 OK")
	if len(ing.Envs()) != 5 {
		t.Fatalf("stored %d messages, want 5", len(ing.Envs()))
	}
	for _, raw := range ing.Raws() {
		if strings.Contains(string(raw), "Subject: low") || strings.Contains(string(raw), "Subject: none") {
			t.Fatalf("a refused message was stored: %q", raw)
		}
	}
}
