package app

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/logbuf"
)

// emfileListener fails every Accept with EMFILE while failing is set, as a
// process out of file descriptors does.
type emfileListener struct {
	net.Listener
	failing atomic.Bool
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.failing.Load() {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// A listener whose accepts keep failing makes /readyz 503 with its name,
// is counted, and is served again (and ready) once accepting works.
func TestReadyzReportsAListenerThatCannotAccept(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listeners[0].Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.TLS.Disable = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	a, err := New(cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	l := &emfileListener{Listener: a.listeners[0]}
	l.failing.Store(true)
	a.listeners[0] = l
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx, time.Second) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	admin := "http://" + a.AdminAddr().String()
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, admin+path, nil)
		req.Header.Set("Authorization", "Bearer "+a.adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The listener is reported once it has failed for more than a second.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body := get("/readyz")
		if code == http.StatusServiceUnavailable && strings.Contains(body, "listener smtp not accepting") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz = %d %q after 10s of failing accepts", code, body)
		}
	}
	if _, out := get("/metrics"); !strings.Contains(out, `postern_smtp_accept_errors_total{listener="smtp"}`) {
		t.Error("accept errors not counted")
	}

	l.failing.Store(false)
	c, err := net.DialTimeout("tcp", a.SMTPAddrs()[0].String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if greeting, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(greeting, "220") {
		t.Fatalf("greeting after the failures: %q", greeting)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz = %d %q once accepting again", code, body)
	}
}
