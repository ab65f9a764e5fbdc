package smtprelay

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Postfix's smtp-sink is a real, independent SMTP server: the transport's
// replies are checked against it as well as against the go-smtp server.
// scripts/ci/install-smtp-sink.sh installs it.

// sinkBinary finds smtp-sink, or skips (fails when POSTERN_REQUIRE_STANDINS=1).
func sinkBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("POSTERN_SMTP_SINK"); p != "" {
		return p
	}
	if p, err := exec.LookPath("smtp-sink"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/smtp-sink"); err == nil {
		return "/usr/sbin/smtp-sink"
	}
	msg := "smtp-sink not found; run scripts/ci/install-smtp-sink.sh or set POSTERN_SMTP_SINK"
	if os.Getenv("POSTERN_REQUIRE_STANDINS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startSink runs smtp-sink on a free loopback port with extra flags and
// returns its address and the directory it dumps messages into.
func startSink(t *testing.T, flags ...string) (addr, dumpDir string) {
	t.Helper()
	bin := sinkBinary(t)
	// smtp-sink drops to -u's privileges when run as root; that user must
	// be able to write the dump directory.
	dir, err := os.MkdirTemp("", "smtpsink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()

	args := []string{"-h", "sink.test", "-d", filepath.Join(dir, "%H%M%S.")}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, flags...)
	args = append(args, addr, "16")
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start smtp-sink: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return addr, dir
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestSmtpSinkAccepts(t *testing.T) {
	t.Parallel()
	addr, dir := startSink(t)
	tr := newTransport(t, Config{Addr: addr, TLS: TLSNone, Name: "sink.test"})
	res := send(t, tr, message("scanner@lan.example", "a@example.com", "b@example.com"))
	check(t, res, map[string]want{"a@example.com": {250, "2.0.0", "", ""}, "b@example.com": {250, "2.0.0", "", ""}})
	if res.Remote != "sink.test" {
		t.Errorf("Remote = %q", res.Remote)
	}
	// smtp-sink writes the dump after replying; give it a moment.
	var dump []byte
	for range 100 {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		if len(files) == 1 {
			if b, err := os.ReadFile(files[0]); err == nil && strings.Contains(string(b), "leading dot") {
				dump = b
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dump == nil {
		t.Fatal("smtp-sink wrote no dump of the message")
	}
	for _, want := range []string{
		"X-Mail-Args: <scanner@lan.example>",
		"X-Rcpt-Args: <a@example.com>",
		"X-Rcpt-Args: <b@example.com>",
		"X-Helo-Args: gw.example.net",
		"Subject: scan",
		"\n.leading dot\n", // dot-stuffing undone by the server
	} {
		if !strings.Contains(string(dump), want) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
}

func TestSmtpSinkRcptReplies(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		flags []string
		want  want
	}{
		"hard": {[]string{"-f", "RCPT", "-B", "550 5.1.1 Recipient address rejected: User unknown"}, want{550, "5.1.1", "User unknown", ""}},
		"soft": {[]string{"-r", "RCPT", "-b", "450 4.2.1 Mailbox busy"}, want{450, "4.2.1", "Mailbox busy", ""}},
		"data": {[]string{"-f", ".", "-B", "554 5.6.0 Content rejected"}, want{554, "5.6.0", "Content rejected", ""}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr, _ := startSink(t, c.flags...)
			tr := newTransport(t, Config{Addr: addr, TLS: TLSNone})
			res := send(t, tr, message("scanner@lan.example", "a@example.com", "b@example.com"))
			check(t, res, map[string]want{"a@example.com": c.want, "b@example.com": c.want})
			r := res.Rcpts[0].Reply
			if got := r.Permanent(); got != (c.want.status[0] == '5') {
				t.Errorf("Permanent = %v for %s", got, r.Diagnostic())
			}
		})
	}
}

func TestSmtpSinkDeadline(t *testing.T) {
	t.Parallel()
	// -w delays the reply to DATA well past the context.
	addr, _ := startSink(t, "-w", strconv.Itoa(30))
	tr := newTransport(t, Config{Addr: addr, TLS: TLSNone})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := tr.Send(ctx, message("scanner@lan.example", "a@example.com"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %v past a 500ms deadline", d)
	}
	if r := res.Rcpts[0].Reply; r.Accepted() || r.Permanent() {
		t.Errorf("reply %+v, want temporary", r)
	}
}
