package cli

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// On SIGTERM the gateway stops taking mail, lets the DATA in flight finish,
// and exits cleanly.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the gateway as a subprocess")
	}
	dir := t.TempDir()
	smtpAddr := freePort(t)
	cfgPath := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("data_dir: %s\nlisteners: [{name: smtp, addr: %q}]\nadmin: {addr: \"\"}\n", filepath.Join(dir, "data"), smtpAddr)), 0o600)
	child := startChild(t, cfgPath, smtpAddr)

	line := func(r *bufio.Reader) string {
		s, err := r.ReadString('\n')
		if err != nil {
			return "error: " + err.Error()
		}
		return strings.TrimSpace(s)
	}
	open := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", smtpAddr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		t.Cleanup(func() { c.Close() })
		r := bufio.NewReader(c)
		line(r) // greeting
		return c, r
	}
	busy, br := open()
	io.WriteString(busy, "HELO busy\r\n")
	line(br)
	for _, cmd := range []string{"MAIL FROM:<a@lan>", "RCPT TO:<b@app.test>", "DATA"} {
		io.WriteString(busy, cmd+"\r\n")
		if got := line(br); !strings.HasPrefix(got, "250") && !strings.HasPrefix(got, "354") {
			t.Fatalf("%s: %s", cmd, got)
		}
	}
	io.WriteString(busy, "Subject: in flight\r\n\r\n")
	idle, ir := open()
	io.WriteString(idle, "HELO idle\r\n")
	line(ir)
	time.Sleep(200 * time.Millisecond)

	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := line(ir); !strings.HasPrefix(got, "421") {
		t.Errorf("idle session got %q at shutdown, want 421", got)
	}
	if c, err := net.Dial("tcp", smtpAddr); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got := line(bufio.NewReader(c))
		c.Close()
		if !strings.HasPrefix(got, "421 4.3.2") && !strings.HasPrefix(got, "error") {
			t.Errorf("new connection while draining got %q", got)
		}
	}
	io.WriteString(busy, "still here\r\n.\r\n")
	if got := line(br); !strings.HasPrefix(got, "250 2.0.0 OK") {
		t.Fatalf("message in flight at SIGTERM got %q", got)
	}
	io.WriteString(busy, "QUIT\r\n")
	line(br)

	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gateway exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not exit after draining")
	}
}
