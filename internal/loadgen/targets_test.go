package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
)

func TestGatewayConfigIsValid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "gateway.yaml")
	cfg := gatewayConfig(filepath.Join(dir, "data"), "127.0.0.1:2525", "127.0.0.1:2526", "http://127.0.0.1:9/hook", "delivery: {workers: 8}\n")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxSessionsPerIP < 50 || c.Delivery.Workers != 8 || c.Routes[0].Webhook == nil || !c.Routes[0].Webhook.AllowPrivate || c.Admin.Addr != "127.0.0.1:2526" {
		t.Errorf("configuration not as meant: %+v", c)
	}
}

// standin finds an external program or skips (fails in CI, where
// POSTERN_REQUIRE_STANDINS=1) naming the script that installs it.
func standin(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := name + " not found; install it with scripts/ci/install-smtp-sink.sh"
	if os.Getenv("POSTERN_REQUIRE_STANDINS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// measure starts target, sends a few messages, and stops it.
func measure(t *testing.T, target Target) (*Proc, *Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := target.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Error(err)
		}
	})
	res, err := Run(ctx, Config{Addr: p.Addr, Sessions: 2, Size: 2 << 10, Messages: 6})
	if err != nil || res.Accepted != 6 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if cpu, err := TreeCPU(p.Pid()); err != nil || cpu < 0 {
		t.Errorf("TreeCPU = %s, %v", cpu, err)
	}
	return p, res
}

func TestSinkTarget(t *testing.T) {
	t.Parallel()
	measure(t, SinkTarget(standin(t, "smtp-sink")))
}

// TestPostfixTarget runs a private Postfix and finds every accepted message
// in its hold queue.
func TestPostfixTarget(t *testing.T) {
	t.Parallel()
	path := standin(t, "postfix")
	if err := CanRunPostfix(path); err != nil {
		t.Skip(err)
	}
	// Not t.TempDir: its parent is private, and Postfix's daemons, running
	// as the postfix user, must reach their queue.
	dir, err := os.MkdirTemp("", "postern-postfix-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	target := PostfixTarget(path)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := target.Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	res, err := Run(ctx, Config{Addr: p.Addr, Sessions: 2, Size: 2 << 10, Messages: 6})
	if err != nil || res.Accepted != 6 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	held, err := os.ReadDir(filepath.Join(dir, "spool", "hold"))
	if err != nil || len(held) != 6 {
		t.Errorf("hold queue has %d files (%v), want 6", len(held), err)
	}
}

// The gateway's allocations are read from its metrics with its admin token.
func TestGatewayAllocated(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "# TYPE go_memstats_alloc_bytes_total counter\ngo_memstats_alloc_bytes_total 1.2345678e+09\ngo_memstats_alloc_bytes 5\n")
	}))
	defer srv.Close()
	dir := t.TempDir()
	tok := filepath.Join(dir, "admin-token")
	os.WriteFile(tok, []byte("tok\n"), 0o600)
	n, err := gatewayAllocated(strings.TrimPrefix(srv.URL, "http://"), tok)
	if err != nil || n != 1234567800 {
		t.Fatalf("allocated %d, %v", n, err)
	}
	os.WriteFile(tok, []byte("wrong"), 0o600)
	if _, err := gatewayAllocated(strings.TrimPrefix(srv.URL, "http://"), tok); err == nil {
		t.Error("a refused metrics request read as a figure")
	}
}

// The ports freeAddrs hands out together are all different (the gateway
// target takes two, for SMTP and admin).
func TestFreeAddrsDiffer(t *testing.T) {
	t.Parallel()
	addrs, err := freeAddrs(8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s handed out twice in %v", a, addrs)
		}
		seen[a] = true
	}
}
