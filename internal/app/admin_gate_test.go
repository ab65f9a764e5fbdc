package app_test

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/logbuf"
)

// testAdminToken is admin.token in testConfig; get sends it.
const testAdminToken = "test-admin-token-6c0f3e2a9b8d4c1e7f5a"

// adminReq is one request as a browser or a local process could send it to
// the admin listener: Host, Origin, Sec-Fetch-Site and Content-Type are
// whatever the sender chose.
type adminReq struct {
	method, path             string
	host                     string // "" keeps the listener's address
	origin, fetchSite, ctype string
	body                     string
	token                    string // "" sends no Authorization
}

func doAdmin(t *testing.T, addr string, r adminReq) (int, string) {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, "http://"+addr+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.host != "" {
		req.Host = r.host
	}
	for k, v := range map[string]string{"Origin": r.origin, "Sec-Fetch-Site": r.fetchSite, "Content-Type": r.ctype} {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, text := roundTrip(t, req)
	return resp.StatusCode, text
}

// roundTrip sends req and returns the response with its body read.
func roundTrip(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Every rule of the admin gate, one at a time: each case is a request that
// passes every other rule, so a case fails when its own rule is missing.
func TestAdminGateRules(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	a := boot(t, testConfig(t, hs.URL))
	addr := a.AdminAddr().String()
	_, port, _ := net.SplitHostPort(addr)
	other := freeLoopbackPort(t)

	devices := adminReq{method: "GET", path: "/v1/devices", token: testAdminToken}
	redrive := adminReq{method: "POST", path: "/v1/redrive/webhook", token: testAdminToken, ctype: "application/json", body: "{}"}
	with := func(r adminReq, f func(*adminReq)) adminReq { f(&r); return r }
	for _, c := range []struct {
		name string
		req  adminReq
		want int
	}{
		{"devices", devices, 200},
		{"redrive", redrive, 200},
		{"metrics", adminReq{method: "GET", path: "/metrics", token: testAdminToken}, 200},

		// Host: DNS rebinding arrives with the attacker's name.
		{"rebinding host", with(devices, func(r *adminReq) { r.host = "attacker.example:" + port }), 421},
		{"rebinding host on metrics", adminReq{method: "GET", path: "/metrics", token: testAdminToken, host: "attacker.example:" + port}, 421},
		{"rebinding host on redrive", with(redrive, func(r *adminReq) { r.host = "attacker.example:" + port }), 421},
		{"name that resolves to loopback", with(devices, func(r *adminReq) { r.host = "127.0.0.1.nip.io:" + port }), 421},
		{"other port", with(devices, func(r *adminReq) { r.host = "localhost:" + other }), 421},
		{"no port", with(devices, func(r *adminReq) { r.host = "localhost" }), 421},
		{"another address", with(devices, func(r *adminReq) { r.host = "10.1.2.3:" + port }), 421},
		{"localhost", with(devices, func(r *adminReq) { r.host = "localhost:" + port }), 200},
		{"LOCALHOST", with(devices, func(r *adminReq) { r.host = "LOCALHOST:" + port }), 200},
		{"::1", with(devices, func(r *adminReq) { r.host = "[::1]:" + port }), 200},
		{"the gateway's hostname", with(devices, func(r *adminReq) { r.host = "gw.test:" + port }), 200},

		// Origin and Sec-Fetch-Site: a page of another origin.
		{"foreign origin", with(redrive, func(r *adminReq) { r.origin = "http://attacker.example" }), 403},
		{"other loopback origin", with(redrive, func(r *adminReq) { r.origin = "http://127.0.0.1:" + other }), 403},
		{"null origin", with(redrive, func(r *adminReq) { r.origin = "null" }), 403},
		{"https origin", with(redrive, func(r *adminReq) { r.origin = "https://127.0.0.1:" + port }), 403},
		{"own origin", with(redrive, func(r *adminReq) { r.origin = "http://127.0.0.1:" + port }), 200},
		{"own origin as localhost", with(redrive, func(r *adminReq) { r.origin = "http://localhost:" + port }), 200},
		{"cross-site GET", with(devices, func(r *adminReq) { r.fetchSite = "cross-site" }), 403},
		{"same-site GET", with(devices, func(r *adminReq) { r.fetchSite = "same-site" }), 403},
		{"same-origin", with(devices, func(r *adminReq) { r.fetchSite = "same-origin" }), 200},
		{"typed URL", with(devices, func(r *adminReq) { r.fetchSite = "none" }), 200},

		// The token, on loopback too.
		{"no token", with(devices, func(r *adminReq) { r.token = "" }), 401},
		{"wrong token", with(devices, func(r *adminReq) { r.token = testAdminToken + "x" }), 401},
		{"metrics without token", adminReq{method: "GET", path: "/metrics"}, 401},
		{"trace without token", adminReq{method: "GET", path: "/v1/trace/01M80H7QV2J8QZ4XCNA7D25Z0Z"}, 401},
		{"redrive without token", with(redrive, func(r *adminReq) { r.token = "" }), 401},

		// Changes only with a JSON body: what a form or no-cors fetch sends is refused.
		{"form post", with(redrive, func(r *adminReq) { r.ctype = "application/x-www-form-urlencoded"; r.body = "a=b" }), 415},
		{"multipart post", with(redrive, func(r *adminReq) { r.ctype = "multipart/form-data; boundary=x"; r.body = "--x--\r\n" }), 415},
		{"text post", with(redrive, func(r *adminReq) { r.ctype = "text/plain"; r.body = "{}" }), 415},
		{"post without type", with(redrive, func(r *adminReq) { r.ctype = "" }), 415},
		{"json with charset", with(redrive, func(r *adminReq) { r.ctype = "application/json; charset=utf-8" }), 200},
		{"redrive by GET", with(redrive, func(r *adminReq) { r.method = "GET"; r.ctype = ""; r.body = "" }), 405},

		// Health stays open for load balancers, whatever the Host.
		{"healthz", adminReq{method: "GET", path: "/healthz", host: "10.0.0.9:" + port}, 200},
		{"readyz", adminReq{method: "GET", path: "/readyz", host: "attacker.example:" + port}, 200},
	} {
		if code, body := doAdmin(t, addr, c.req); code != c.want {
			t.Errorf("%s: %s %s (Host %q) = %d %q, want %d", c.name, c.req.method, c.req.path, c.req.host, code, strings.TrimSpace(body), c.want)
		}
	}
}

func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// A listener bound to every address cannot know its names: it takes IP
// literals (which a rebinding page cannot be served under) and the
// gateway's hostname, and still refuses other names.
func TestAdminGateOnWildcardBind(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Admin.Addr = "0.0.0.0:0"
	a := boot(t, cfg)
	_, port, _ := net.SplitHostPort(a.AdminAddr().String())
	addr := "127.0.0.1:" + port
	for host, want := range map[string]int{
		"10.1.2.3:" + port:         200,
		"[fd00::1]:" + port:        200,
		"gw.test:" + port:          200,
		"localhost:" + port:        200,
		"attacker.example:" + port: 421,
		"10.1.2.3:1":               421,
	} {
		if code, body := doAdmin(t, addr, adminReq{method: "GET", path: "/v1/devices", host: host, token: testAdminToken}); code != want {
			t.Errorf("Host %s: %d %q, want %d", host, code, body, want)
		}
	}
}

// Without admin.token the gateway generates one into data_dir at first
// start (0600, 32 random bytes in base64url), logs where it is but never
// the token, requires it from loopback too, and keeps it across restarts.
func TestAdminTokenFile(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Admin.Token = ""
	var logs logbuf.Buffer
	a, stop := startLogged(t, cfg, &logs)
	path := filepath.Join(cfg.DataDir, app.AdminTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %#o, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(b))
	if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != 32 {
		t.Errorf("token %d characters, decodes to %d bytes (%v); want 32 bytes of base64url", len(tok), len(raw), err)
	}
	if got, err := app.AdminToken(cfg); err != nil || got != tok {
		t.Errorf("AdminToken = %v, %v; want the file's token", got != "", err)
	}
	out := logs.String()
	if !strings.Contains(out, "admin API token generated") || !strings.Contains(out, path) {
		t.Errorf("the start log does not say where the token is:\n%s", out)
	}
	if strings.Contains(out, tok) {
		t.Error("the log holds the admin token")
	}

	addr := a.AdminAddr().String()
	if code, _ := doAdmin(t, addr, adminReq{method: "GET", path: "/v1/devices"}); code != 401 {
		t.Errorf("loopback without the token: %d, want 401", code)
	}
	if code, body := doAdmin(t, addr, adminReq{method: "GET", path: "/v1/devices", token: tok}); code != 200 {
		t.Errorf("with the generated token: %d %q", code, body)
	}
	stop()

	var logs2 logbuf.Buffer
	a, stop = startLogged(t, cfg, &logs2)
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Error("a restart replaced the token")
	}
	if !strings.Contains(logs2.String(), "admin API token in use") {
		t.Errorf("restart log:\n%s", logs2.String())
	}
	if code, _ := doAdmin(t, a.AdminAddr().String(), adminReq{method: "GET", path: "/metrics", token: tok}); code != 200 {
		t.Errorf("the kept token after a restart: %d", code)
	}
	stop()

	// A token file others can read is refused at start, with the fix.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := app.New(cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("New with a 0644 token file: %v; want a refusal that says chmod 600", err)
	}
}

// An admin.token that resolves to nothing would let an empty Bearer in.
func TestAdminTokenEmptyIsRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "http://127.0.0.1:9/")
	cfg.Admin.Token = "file:" + filepath.Join(t.TempDir(), "empty")
	os.WriteFile(strings.TrimPrefix(cfg.Admin.Token, "file:"), []byte("\n"), 0o600)
	if a, err := app.New(cfg, quietLogger()); err == nil {
		a.Close()
		t.Fatal("New took an empty admin.token")
	} else if !strings.Contains(err.Error(), "admin.token") {
		t.Errorf("error does not name admin.token: %v", err)
	}
}

// /debug/pprof exists only with admin.pprof, and then behind the gate.
func TestAdminPProf(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	off := boot(t, testConfig(t, hs.URL))
	if code, _ := doAdmin(t, off.AdminAddr().String(), adminReq{method: "GET", path: "/debug/pprof/", token: testAdminToken}); code != 404 {
		t.Errorf("pprof without admin.pprof: %d, want 404", code)
	}
	cfg := testConfig(t, hs.URL)
	cfg.Admin.PProf = true
	on := boot(t, cfg)
	addr := on.AdminAddr().String()
	_, port, _ := net.SplitHostPort(addr)
	for _, c := range []struct {
		req  adminReq
		want int
	}{
		{adminReq{method: "GET", path: "/debug/pprof/", token: testAdminToken}, 200},
		{adminReq{method: "GET", path: "/debug/pprof/goroutine?debug=1", token: testAdminToken}, 200},
		{adminReq{method: "GET", path: "/debug/pprof/"}, 401},
		{adminReq{method: "GET", path: "/debug/pprof/heap", host: "attacker.example:" + port, token: testAdminToken}, 421},
		{adminReq{method: "GET", path: "/debug/pprof/cmdline", token: testAdminToken, fetchSite: "cross-site"}, 403},
	} {
		if code, _ := doAdmin(t, addr, c.req); code != c.want {
			t.Errorf("%+v: %d, want %d", c.req, code, c.want)
		}
	}
}

// startLogged boots the app with its log kept in logs too, and returns a
// stop that drains it and waits for Run (also run at cleanup).
func startLogged(t *testing.T, cfg *config.Config, logs io.Writer) (*app.App, func()) {
	t.Helper()
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(io.MultiWriter(logWriter{t}, logs), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 5*time.Second) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
