package app_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
)

// At shutdown a session that is not uploading (just greeted, after EHLO,
// or inside a transaction before DATA) is told 421 4.3.2 and closed at
// once, not left to time out (421 4.4.2) or cut off silently.
func TestShutdownAnswersIdleSessions421_432(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	logs := &logWatch{msgs: make(chan string, 1000)}
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx, 10*time.Second) }()
	logs.wait(t, "postern started")
	addr := a.SMTPAddrs()[0].String()

	type session struct {
		name string
		r    *bufio.Reader
	}
	var sessions []session
	for _, s := range []struct {
		name string
		cmds []string
	}{
		{"greeted", nil},
		{"after EHLO", []string{"EHLO scanner.lan"}},
		{"after RCPT", []string{"EHLO scanner.lan", "MAIL FROM:<a@lan>", "RCPT TO:<x@app.test>"}},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		readReply(t, r, "220")
		for _, cmd := range s.cmds {
			c.Write([]byte(cmd + "\r\n"))
			readReply(t, r, "2")
		}
		sessions = append(sessions, session{s.name, r})
	}
	start := time.Now()
	cancel()
	for _, s := range sessions {
		got, _ := s.r.ReadString('\n')
		if !strings.HasPrefix(got, "421 4.3.2 ") {
			t.Errorf("%s: got %q at shutdown, want 421 4.3.2", s.name, got)
		}
		if _, err := s.r.ReadByte(); err == nil {
			t.Errorf("%s: the connection stayed open after 421", s.name)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("idle sessions were ended after %s, not at once (grace 10s)", took)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// readReply reads one reply, multi-line or not, and checks its code.
func readReply(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	for {
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, want) {
			t.Fatalf("reply %q (%v), want %s", l, err, want)
		}
		if len(l) < 4 || l[3] != '-' {
			return
		}
	}
}
