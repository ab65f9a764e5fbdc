package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/logbuf"
)

// logWatch keeps the JSON log lines and reports each message on a channel,
// so a test can wait for an event.
type logWatch struct {
	logbuf.Buffer
	msgs chan string
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.Buffer.Write(p)
	var rec struct{ Msg string }
	if json.Unmarshal(p, &rec) == nil {
		select {
		case w.msgs <- rec.Msg:
		default:
		}
	}
	return len(p), nil
}

func (w *logWatch) wait(t *testing.T, msg string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-w.msgs:
			if m == msg {
				return
			}
		case <-timeout:
			t.Fatalf("no %q log line", msg)
		}
	}
}

// On shutdown every listener stops taking mail at once, and a client that
// never finishes its DATA cannot keep the gateway running past the grace.
func TestShutdownIsBoundedWhateverClientsDo(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Listeners = append(cfg.Listeners, config.Listener{Name: "second", Addr: "127.0.0.1:0", Mode: "smtp"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logWatch{msgs: make(chan string, 1000)}
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	const grace = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx, grace) }()
	logs.wait(t, "postern started")
	first, second := a.SMTPAddrs()[0].String(), a.SMTPAddrs()[1].String()

	// An upload on the first listener that trickles forever.
	c, err := net.Dial("tcp", first)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			return "error: " + err.Error()
		}
		return strings.TrimSpace(s)
	}
	if got := line(); !strings.HasPrefix(got, "220") {
		t.Fatalf("greeting %q", got)
	}
	for _, step := range []struct{ cmd, want string }{
		{"HELO scanner.lan", "250"}, {"MAIL FROM:<a@lan>", "250"}, {"RCPT TO:<x@app.test>", "250"}, {"DATA", "354"},
	} {
		io.WriteString(c, step.cmd+"\r\n")
		for {
			got := line()
			if !strings.HasPrefix(got, step.want) {
				t.Fatalf("%s: %q", step.cmd, got)
			}
			if len(got) < 4 || got[3] != '-' {
				break
			}
		}
	}
	io.WriteString(c, "Subject: never ends\r\n\r\n")
	trickle := make(chan struct{})
	defer close(trickle)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-trickle:
				return
			case <-tick.C:
				if _, err := io.WriteString(c, "x"); err != nil {
					return
				}
			}
		}
	}()

	start := time.Now()
	cancel()
	logs.wait(t, "shutting down")
	// Every listener answers 421 from now on: the other one too, while the
	// first still drains its upload.
	for _, addr := range []string{second, first} {
		n, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %s while draining: %v", addr, err)
		}
		n.SetDeadline(time.Now().Add(5 * time.Second))
		got, _ := bufio.NewReader(n).ReadString('\n')
		n.Close()
		if !strings.HasPrefix(got, "421 4.3.2") {
			t.Errorf("new connection to %s after shutdown began got %q, want 421 4.3.2", addr, got)
		}
	}

	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("Run still running %s after shutdown began with a %s grace", grace+5*time.Second, grace)
	}
	t.Logf("stopped %s after shutdown began", time.Since(start))
	if got := line(); strings.HasPrefix(got, "250") {
		t.Errorf("the cut-off upload got %q", got)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var last struct {
		Level, Msg string
		TookMS     *int64 `json:"took_ms"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Msg != "gateway stopped" || last.Level != "INFO" || last.TookMS == nil {
		t.Errorf("last log line %q, want gateway stopped at INFO with took_ms", lines[len(lines)-1])
	}
}
