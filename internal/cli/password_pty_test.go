//go:build linux

package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair with the kernel's /dev/ptmx (x/sys
// is already a dependency; creack/pty is not, and this is all it would do).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal (/dev/ptmx): %v", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// screen is what the terminal shows: everything written to the master side.
type screen struct {
	mu   sync.Mutex
	b    bytes.Buffer
	more chan struct{}
}

func watchScreen(m *os.File) *screen {
	s := &screen{more: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := m.Read(buf)
			s.mu.Lock()
			s.b.Write(buf[:n])
			s.mu.Unlock()
			select {
			case s.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the screen shows want n times.
func (s *screen) waitFor(t *testing.T, want string, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for strings.Count(s.String(), want) < n {
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("terminal never showed %q %d time(s); it shows %q", want, n, s.String())
		}
	}
}

// waitNoEcho waits until the terminal's echo is off, as a person waits for
// the prompt before typing: the prompt is written just before echo goes off,
// and the terminal has no event for the change, so this polls.
func waitNoEcho(t *testing.T, tty *os.File) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("hash-password prompted but never turned the terminal's echo off")
		}
		time.Sleep(time.Millisecond)
	}
}

// hashOnTerminal runs hash-password with a terminal as stdin and stderr,
// types the two answers at its prompts, and returns its exit code, stdout
// and what the terminal showed.
func hashOnTerminal(t *testing.T, first, second string) (int, string, string) {
	t.Helper()
	m, s := openPTY(t)
	scr := watchScreen(m)
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(t.Context(), Env{Args: []string{"hash-password", "-cost", "10"}, Getenv: func(string) string { return "" },
			Stdin: s, Stdout: &out, Stderr: s})
	}()
	scr.waitFor(t, "Password: ", 1)
	waitNoEcho(t, s)
	io.WriteString(m, first+"\r")
	scr.waitFor(t, "Again: ", 1)
	waitNoEcho(t, s)
	io.WriteString(m, second+"\r")
	select {
	case code := <-done:
		// A mark after everything hash-password wrote: once the screen
		// shows it, it shows all of that too.
		io.WriteString(s, "\n<end>")
		scr.waitFor(t, "<end>", 1)
		return code, out.String(), scr.String()
	case <-time.After(30 * time.Second):
		t.Fatalf("hash-password did not return; terminal: %q", scr.String())
		return 0, "", ""
	}
}

// On a terminal, hash-password asks twice and the password never shows.
func TestHashPasswordOnTerminalAsksTwiceWithoutEcho(t *testing.T) {
	t.Parallel()
	code, out, shown := hashOnTerminal(t, "correct horse", "correct horse")
	if code != 0 {
		t.Fatalf("exit %d; terminal: %q", code, shown)
	}
	if strings.Contains(shown, "correct") || strings.Contains(shown, "horse") {
		t.Errorf("the terminal echoed the password: %q", shown)
	}
	hash := strings.TrimSpace(out)
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")); err != nil {
		t.Fatalf("hash %q does not verify: %v", hash, err)
	}
}

// Two different answers: it says so, prints no hash and exits non-zero.
func TestHashPasswordOnTerminalRefusesAMismatch(t *testing.T) {
	t.Parallel()
	code, out, shown := hashOnTerminal(t, "correct horse", "correct hosre")
	if code == 0 || out != "" || !strings.Contains(shown, "do not match") {
		t.Errorf("exit %d, stdout %q, terminal %q; want a non-zero exit, no hash, and \"do not match\"", code, out, shown)
	}
}
