package sqsqueue_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The SQS stand-in is fauxqs, an SQS emulator on Node, installed by
// scripts/ci/install-sqs-standin.sh. The package starts one process for all
// its tests, on first use, and TestMain stops it; each test makes its own
// queues in it.
const (
	// standinEnv names the stand-in's start command when it is not at the
	// install script's default location.
	standinEnv = "POSTERN_FAUXQS"
	// requireEnv=1 (as CI sets) turns a missing stand-in from a skip into a
	// failure.
	requireEnv = "POSTERN_REQUIRE_STANDINS"
	// defaultStandin is where the install script puts the start command,
	// relative to this package's directory (go test's working directory).
	defaultStandin = "../../../.ci/cache/sqs/bin/fauxqs-loopback"
	// standinOnPath is the start command's name when looked up on PATH.
	standinOnPath = "fauxqs-loopback"
	installHint   = "scripts/ci/install-sqs-standin.sh"
	// readyLine starts the line the start command prints once listening.
	readyLine = "fauxqs listening on "
)

// standin is the package's one stand-in process. It is the only state the
// tests share; sync.Once guards its start and TestMain its stop.
var standin fauxqs

func TestMain(m *testing.M) {
	code := m.Run()
	if err := standin.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the SQS stand-in: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// endpoint returns the running stand-in's URL, starting it on first use. If
// the stand-in is not installed it skips t, or fails it when requireEnv=1.
func endpoint(t *testing.T) string {
	t.Helper()
	standin.once.Do(standin.start)
	switch {
	case standin.missing != nil && os.Getenv(requireEnv) == "1":
		t.Fatalf("SQS stand-in required (%s=1) but %v; run %s", requireEnv, standin.missing, installHint)
	case standin.missing != nil:
		t.Skipf("SQS stand-in not installed (%v): run %s, or set %s to its start command", standin.missing, installHint, standinEnv)
	case standin.err != nil:
		t.Fatalf("SQS stand-in: %v", standin.err)
	}
	return standin.endpoint
}

type fauxqs struct {
	once     sync.Once
	missing  error // not installed
	err      error // installed but did not start
	endpoint string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{} // closed once cmd.Wait returned
	stderr *tailBuffer
}

// locate finds the start command: $POSTERN_FAUXQS, the install script's
// location, or PATH. A POSTERN_FAUXQS that names nothing is an error, not a
// missing install: someone asked for that file.
func locate() (path string, missing, err error) {
	if p := os.Getenv(standinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", nil, fmt.Errorf("%s=%s: %w", standinEnv, p, err)
		}
		return p, nil, nil
	}
	if p, err := filepath.Abs(defaultStandin); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil, nil
		}
	}
	if p, err := exec.LookPath(standinOnPath); err == nil {
		return p, nil, nil
	}
	return "", fmt.Errorf("no %s, %s on PATH, or %s set", defaultStandin, standinOnPath, standinEnv), nil
}

func (f *fauxqs) start() {
	path, missing, err := locate()
	if missing != nil || err != nil {
		f.missing, f.err = missing, err
		return
	}
	if err := f.run(path); err != nil {
		f.err = fmt.Errorf("%s: %w; its stderr:\n%s", path, err, f.stderr)
		_ = f.stop()
	}
}

// run starts the command on any free loopback port and waits until it
// answers.
func (f *fauxqs) run(path string) error {
	f.stderr = &tailBuffer{max: 16 << 10}
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), "FAUXQS_PORT=0", "FAUXQS_LOGGER=false")
	cmd.Stderr = f.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	// The stand-in exits when its stdin closes, so it goes away even if
	// this process is killed before TestMain can stop it.
	if f.stdin, err = cmd.StdinPipe(); err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	f.cmd = cmd
	f.exited = make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), readyLine); ok {
				select {
				case lines <- line:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout) // keep the pipe drained
	}()
	go func() {
		_ = cmd.Wait()
		close(f.exited)
	}()

	var addr string
	select {
	case addr = <-lines:
	case <-f.exited:
		return fmt.Errorf("exited before listening: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		return errors.New("not listening after 30s")
	}
	u, err := url.Parse(strings.TrimSpace(addr))
	if err != nil {
		return fmt.Errorf("listening address %q: %w", addr, err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listening on %q, want a loopback address only", addr)
	}
	f.endpoint = u.String()
	return f.waitHealthy(10 * time.Second)
}

// waitHealthy polls the stand-in's health URL until it answers 200.
func (f *fauxqs) waitHealthy(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.endpoint+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health: %s", resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %s: %w", limit, err)
		case <-f.exited:
			return fmt.Errorf("exited: %v", f.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the process: end of stdin and SIGTERM, then SIGKILL if it has
// not exited within five seconds.
func (f *fauxqs) stop() error {
	if f.cmd == nil {
		return nil
	}
	_ = f.stdin.Close()
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.exited:
		return nil
	case <-time.After(5 * time.Second):
		_ = f.cmd.Process.Kill()
		<-f.exited
		return errors.New("did not exit within 5s of SIGTERM; killed")
	}
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if extra := b.buf.Len() - b.max; extra > 0 {
		b.buf.Next(extra)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
