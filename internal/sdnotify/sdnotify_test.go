package sdnotify_test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/sdnotify"
)

// listen is systemd's end: a unixgram socket at a path, or abstract.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestSendsEachStateAsOneDatagram(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		"@postern-sdnotify-test-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000000"),
	} {
		c := listen(t, name)
		n := sdnotify.New(func(k string) string {
			if k == sdnotify.EnvSocket {
				return name
			}
			return ""
		})
		if !n.Enabled() {
			t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
		}
		if err := n.Ready(); err != nil {
			t.Fatal(err)
		}
		if got := read(t, c); !strings.HasPrefix(got, "READY=1\n") || !strings.Contains(got, "\nSTATUS=") {
			t.Errorf("%s: Ready sent %q", name, got)
		}
		if err := n.Reloading(); err != nil {
			t.Fatal(err)
		}
		if got := read(t, c); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
			t.Errorf("%s: Reloading sent %q", name, got)
		}
		if err := n.Stopping(); err != nil {
			t.Fatal(err)
		}
		if got := read(t, c); !strings.HasPrefix(got, "STOPPING=1\n") {
			t.Errorf("%s: Stopping sent %q", name, got)
		}
	}
}

func TestWithoutSocketSendsNothing(t *testing.T) {
	t.Parallel()
	n := sdnotify.New(func(string) string { return "" })
	if n.Enabled() {
		t.Error("Enabled() = true without NOTIFY_SOCKET")
	}
	if err := n.Ready(); err != nil {
		t.Errorf("Ready without a socket: %v", err)
	}
	var nilN *sdnotify.Notifier
	if err := nilN.Stopping(); err != nil {
		t.Errorf("nil Notifier: %v", err)
	}
}

func TestRefusesWhatIsNotOneAssignment(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "notify")
	listen(t, name)
	n := sdnotify.New(func(string) string { return name })
	for _, bad := range []string{"READY", "STATUS=a\nREADY=1"} {
		if err := n.Send(bad); err == nil {
			t.Errorf("Send(%q) accepted", bad)
		}
	}
}

func TestMissingSocketIsAnError(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "gone")
	n := sdnotify.New(func(string) string { return name })
	if err := n.Ready(); err == nil {
		t.Error("Ready to a socket nobody listens on returned nil")
	}
}
