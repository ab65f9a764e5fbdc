package standin

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// motoServer is the stand-in for the AWS services that have no dedicated
// one here (SES v2, SSM Parameter Store, Secrets Manager, CloudFormation,
// CloudWatch Logs): moto's server, one Python process that keeps every
// service in memory and accepts any credentials.
var motoServer = binary{
	what:   "AWS stand-in (moto_server)",
	envVar: "POSTERN_MOTO_SERVER",
	cached: ".ci/cache/bin/moto_server",
	onPath: "moto_server",
	hint:   "pip install 'moto[server]' (moto 5.2.1, Python 3.11)",
}

// locateMoto finds moto_server as other stand-ins are found, then among
// pyenv's shims: pip installs it beside the Python that a non-login shell
// (go test) may not have on PATH.
func locateMoto() (path string, missing, err error) {
	path, missing, err = motoServer.locate()
	if missing == nil {
		return path, nil, err
	}
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		if home, herr := os.UserHomeDir(); herr == nil {
			root = filepath.Join(home, ".pyenv")
		}
	}
	if root != "" {
		shim := filepath.Join(root, "shims", "moto_server")
		if _, serr := exec.LookPath(shim); serr == nil {
			return shim, nil, nil
		}
	}
	return "", fmt.Errorf("%v, nor in pyenv's shims", missing), nil
}

// motoShared is the moto server the test binary shares. It lives beside
// the shared S3 and SQS servers' state for the same reason (every test in
// the binary must reach one process) but apart from Main: moto keeps no
// files, and the parent-death signal ends it with the binary.
var motoShared sharedServer

// Moto returns the endpoint of the moto server the test binary shares,
// starting it on first use. Services are reached with any credentials and
// region Region at this one endpoint (set BaseEndpoint per service client).
// Tests share it by naming what they create uniquely; moto's state is
// global, so a test that resets it (POST /moto-api/reset) uses StartMoto.
func Moto(t testing.TB) (endpoint string) {
	t.Helper()
	return motoShared.getWith(t, motoServer, locateMoto, startMoto).Endpoint
}

// StartMoto starts a moto server for t alone, stopped when t ends.
func StartMoto(t testing.TB) *Server {
	t.Helper()
	path, missing, err := locateMoto()
	require(t, motoServer, missing, err)
	s, err := startMoto(path)
	if err != nil {
		t.Fatalf("%s: %v", motoServer.what, err)
	}
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("%s: %v", motoServer.what, err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", motoServer.what, s.output())
		}
	})
	return s
}

// getWith is sharedServer.get with a locator of the caller's.
func (l *sharedServer) getWith(t testing.TB, b binary, locate func() (string, error, error), start func(path string) (*Server, error)) *Server {
	t.Helper()
	l.mu.Lock()
	if !l.tried {
		l.tried = true
		var path string
		if path, l.missing, l.err = locate(); l.missing == nil && l.err == nil {
			l.srv, l.err = start(path)
		}
	}
	srv, missing, err := l.srv, l.missing, l.err
	l.mu.Unlock()
	require(t, b, missing, err)
	return srv
}

func startMoto(path string) (*Server, error) {
	return newServer(motoServer.what, "http", func(port int) (*proc, int, error) {
		if port != 0 {
			return launchMoto(path, port)
		}
		// moto_server cannot report a port of its own choosing: take a
		// free one, and another if something took it first.
		var err error
		for range 3 {
			if port, err = freePort(); err != nil {
				continue
			}
			var p *proc
			if p, _, err = launchMoto(path, port); err == nil {
				return p, port, nil
			}
		}
		return nil, 0, err
	})
}

// launchMoto starts moto_server on 127.0.0.1:port and waits until its
// dashboard answers. The pyenv shim execs the interpreter, and the server
// (werkzeug, threaded, no reloader) forks nothing, so the process started
// is the whole server: stopping it stops the server.
func launchMoto(path string, port int) (*proc, int, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProc(path, []string{"-H", "127.0.0.1", "-p", strconv.Itoa(port)}, nil, "")
	if err != nil {
		return nil, 0, err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	if err := p.waitHealthy("http://"+addr+"/moto-api/", client, 60*time.Second); err != nil {
		_ = p.stop(5 * time.Second)
		return nil, 0, fmt.Errorf("%s on %s: %w", path, addr, err)
	}
	return p, port, nil
}
