package standin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one running stand-in process.
type proc struct {
	cmd *exec.Cmd
	// stdin is held open: fauxqs's launcher exits when it closes, so the
	// server goes when the test binary does, however that ends.
	stdin  io.WriteCloser
	exited chan struct{} // closed once cmd.Wait returned
	out    *tailBuffer   // the last of stdout and stderr, for error messages
	// ready receives the rest of the first stdout line that starts with
	// the watched prefix.
	ready chan string
}

// startProc starts path with args and env added to this process's
// environment. watch, when not empty, is the prefix of the stdout line
// that announces readiness (see proc.ready).
func startProc(path string, args, env []string, watch string) (*proc, error) {
	p := &proc{out: &tailBuffer{max: 16 << 10}, exited: make(chan struct{}), ready: make(chan string, 1)}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = &lineWatch{tail: p.out, prefix: []byte(watch), found: p.ready}
	cmd.Stderr = p.out
	cmd.SysProcAttr = sysProcAttr()
	// Output is copied by goroutines that end when every holder of the
	// pipes closes them; a grandchild must not keep Wait waiting.
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.cmd, p.stdin = cmd, stdin
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// exitError describes an unexpected exit, with the process's last output.
func (p *proc) exitError() error {
	return fmt.Errorf("exited (%v); its output:\n%s", p.cmd.ProcessState, p.out)
}

// stop ends the process: end of stdin and SIGTERM, then SIGKILL if it has
// not exited within grace.
func (p *proc) stop(grace time.Duration) error {
	_ = p.stdin.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("did not exit within %s of SIGTERM; killed", grace)
	}
}

// waitHealthy polls url until it answers 200, the process exits, or limit
// passes.
func (p *proc) waitHealthy(url string, client *http.Client, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %s: %w", limit, err)
		case <-p.exited:
			return p.exitError()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePort returns a 127.0.0.1 port that was free a moment ago, for servers
// that cannot be told to pick one themselves.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
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

// lineWatch copies output to tail and reports the first line starting with
// prefix on found.
type lineWatch struct {
	tail   io.Writer
	prefix []byte
	found  chan<- string
	line   []byte // the incomplete last line, bounded
	done   bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	_, _ = w.tail.Write(p)
	if w.done || len(w.prefix) == 0 {
		return len(p), nil
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if rest, ok := bytes.CutPrefix(bytes.TrimRight(w.line[:i], "\r"), w.prefix); ok {
			w.found <- string(rest) // buffered for this one value
			w.done, w.line = true, nil
			return len(p), nil
		}
		w.line = w.line[i+1:]
	}
	if len(w.line) > 4096 {
		w.line = nil // a line this long is not the announcement
	}
	return len(p), nil
}

// errStopped is the error of a Server that was stopped and not started.
var errStopped = errors.New("stand-in stopped")
