package standin

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Server is a stand-in process started by this package.
type Server struct {
	// Endpoint is the base URL: http://127.0.0.1:PORT, or https:// when
	// the server was started with TLS.
	Endpoint string
	// RootCAs trusts the server's certificate when it serves TLS; nil
	// otherwise.
	RootCAs *x509.CertPool

	what string
	// launch starts the process on port (0: a free port of its choosing)
	// and returns it with the port it listens on.
	launch func(port int) (*proc, int, error)
	// cleanup runs after the final stop (removes the server's files).
	cleanup func()

	mu   sync.Mutex
	port int
	p    *proc // nil while stopped
	last *proc // the latest process, for its output
}

// newServer launches a server on a free port.
func newServer(what, scheme string, launch func(int) (*proc, int, error)) (*Server, error) {
	s := &Server{what: what, launch: launch}
	p, port, err := launch(0)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", what, err)
	}
	s.p, s.last, s.port = p, p, port
	s.Endpoint = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
	return s, nil
}

// Stop stops the server, as an outage would: connections are refused
// until Start. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	err := s.p.stop(5 * time.Second)
	s.p = nil
	if err != nil {
		return fmt.Errorf("stop %s: %w", s.what, err)
	}
	return nil
}

// Start starts a stopped server again at the same endpoint. What it held
// depends on the server: fauxqs comes back empty, versitygw with every
// bucket and object. The port is retried for a few seconds in case
// something else took it meanwhile.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		return nil
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		var p *proc
		if p, _, err = s.launch(s.port); err == nil {
			s.p, s.last = p, p
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restart %s on port %d: %w", s.what, s.port, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// output returns the end of the latest process's stdout and stderr.
func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.out.String()
}

// close stops the server for good and removes its files.
func (s *Server) close() error {
	err := s.Stop()
	if s.cleanup != nil {
		s.cleanup()
	}
	return err
}

// startOwn locates b and starts a server only t uses, stopped when t ends.
func startOwn(t testing.TB, b binary, start func(path string) (*Server, error)) *Server {
	t.Helper()
	path, missing, err := b.locate()
	require(t, b, missing, err)
	s, err := start(path)
	if err != nil {
		t.Fatalf("%s: %v", b.what, err)
	}
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("%s: %v", b.what, err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", b.what, s.output())
		}
	})
	return s
}

// require skips or fails t when the stand-in could not be had: skip when
// it is not installed, unless required (RequireEnv=1 or CI=true); fail
// when it is installed but would not start.
func require(t testing.TB, b binary, missing, err error) {
	t.Helper()
	switch {
	case missing != nil && required():
		t.Fatalf("%s required (%s=1 or CI=true) but %v; run %s", b.what, RequireEnv, missing, b.hint)
	case missing != nil:
		t.Skipf("%s not installed (%v): run %s, or set %s to its path", b.what, missing, b.hint, b.envVar)
	case err != nil:
		t.Fatalf("%s: %v", b.what, err)
	}
}

// sharedServer is a server every test of a binary uses, started on first
// use.
type sharedServer struct {
	mu      sync.Mutex
	tried   bool
	srv     *Server
	missing error // not installed
	err     error // installed but did not start
}

// get returns the shared server, starting it on first use; t is skipped or
// failed as require says.
func (l *sharedServer) get(t testing.TB, b binary, start func(path string) (*Server, error)) *Server {
	t.Helper()
	l.mu.Lock()
	if !l.tried {
		l.tried = true
		var path string
		if path, l.missing, l.err = b.locate(); l.missing == nil && l.err == nil {
			l.srv, l.err = start(path)
		}
	}
	srv, missing, err := l.srv, l.missing, l.err
	l.mu.Unlock()
	require(t, b, missing, err)
	return srv
}

func (l *sharedServer) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return nil
	}
	err := l.srv.close()
	l.srv, l.err = nil, errStopped
	return err
}

// shared holds the servers one test binary shares. It is package state
// because every test in the binary must reach the same processes; Main
// stops them.
var shared struct {
	sqs, s3 sharedServer
}

// Main runs a package's tests and then stops the shared stand-ins; call it
// from TestMain. Without it they still go when the test binary exits
// (fauxqs when its stdin closes; on Linux both by the parent-death signal),
// but their temporary files stay behind.
func Main(m *testing.M) {
	code := m.Run()
	if err := errors.Join(shared.sqs.close(), shared.s3.close()); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the stand-ins: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
