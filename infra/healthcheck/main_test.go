package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbeURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ addr, path, want string }{
		{"127.0.0.1:8025", "/healthz", "http://127.0.0.1:8025/healthz"},
		{":8025", "/healthz", "http://127.0.0.1:8025/healthz"},
		{"0.0.0.0:9000", "/readyz", "http://127.0.0.1:9000/readyz"},
		{"[::]:8025", "/healthz", "http://[::1]:8025/healthz"},
		{"10.0.0.5:8025", "/healthz", "http://10.0.0.5:8025/healthz"},
	} {
		got, err := probeURL(c.addr, c.path)
		if err != nil || got != c.want {
			t.Errorf("probeURL(%q, %q) = %q, %v; want %q", c.addr, c.path, got, err, c.want)
		}
	}
	for _, bad := range [][2]string{{"8025", "/healthz"}, {"127.0.0.1:8025", "healthz"}} {
		if _, err := probeURL(bad[0], bad[1]); err == nil {
			t.Errorf("probeURL(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// adminStub serves /healthz with the given status on 127.0.0.1.
func adminStub(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return l.Addr().String()
}

func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	healthy := adminStub(t, http.StatusOK)
	sick := adminStub(t, http.StatusServiceUnavailable)
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		l.Close()
		return a
	}()
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		name   string
		args   []string
		getenv func(string) string
		want   int
	}{
		{"healthy by flag", []string{"-addr", healthy}, noEnv, 0},
		{"healthy by env", nil, func(k string) string {
			if k == "POSTERN_ADMIN_ADDR" {
				return healthy
			}
			return ""
		}, 0},
		{"503", []string{"-addr", sick}, noEnv, 1},
		{"wrong path is 404", []string{"-addr", healthy, "-path", "/readyz"}, noEnv, 1},
		{"nothing listening", []string{"-addr", closed}, noEnv, 1},
		{"bad address", []string{"-addr", "nope"}, noEnv, 2},
		{"bad flag", []string{"-bogus"}, noEnv, 2},
	} {
		var stderr bytes.Buffer
		if got := run(context.Background(), c.args, c.getenv, &stderr); got != c.want {
			t.Errorf("%s: exit %d, want %d (stderr %q)", c.name, got, c.want, stderr.String())
		}
		if c.want == 1 && !strings.Contains(stderr.String(), "healthcheck:") {
			t.Errorf("%s: stderr %q does not say what failed", c.name, stderr.String())
		}
	}
}
