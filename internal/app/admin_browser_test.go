package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/logbuf"
)

// bootDefaultAdmin boots a gateway with the default admin settings (no
// admin.token, so a generated one) and one message delivered once to the
// webhook route app. It returns the admin address, the message id and the
// hook.
func bootDefaultAdmin(t *testing.T, logs io.Writer) (admin, id string, h *hook) {
	t.Helper()
	h, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Admin.Token = ""
	a, _ := startLogged(t, cfg, logs)
	reply, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan", []string{"ops@app.test"}, []byte("Subject: scan\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	h.wait(t, 1, 20*time.Second)
	return a.AdminAddr().String(), strings.TrimPrefix(reply, "OK "), h
}

// What the issue saw a browser on the gateway's machine do with the default
// configuration, request by request as the browser sends it: a page of
// another loopback origin posts forms (and no-cors fetches) at replay and
// redrive, and a DNS-rebinding page reads the API under its own Host. Each
// is refused, and nothing is replayed or redriven.
func TestAdminBrowserLikeRequestsDriveNothing(t *testing.T) {
	t.Parallel()
	var logs logbuf.Buffer
	admin, id, h := bootDefaultAdmin(t, &logs)
	_, port, _ := net.SplitHostPort(admin)
	page := "http://127.0.0.1:" + freeLoopbackPort(t)
	rebound := "attacker.example:" + port
	for _, c := range []struct {
		name string
		req  adminReq
		want int
	}{
		{"form post replay", adminReq{method: "POST", path: "/v1/replay/" + id + "?route=app", origin: page, fetchSite: "same-site",
			ctype: "application/x-www-form-urlencoded", body: "route=app"}, 403},
		{"form post redrive", adminReq{method: "POST", path: "/v1/redrive/webhook", origin: page, fetchSite: "same-site",
			ctype: "application/x-www-form-urlencoded", body: "x=1"}, 403},
		{"no-cors fetch replay", adminReq{method: "POST", path: "/v1/replay/" + id, origin: page, fetchSite: "same-site",
			ctype: "text/plain;charset=UTF-8", body: `{"route":"app"}`}, 403},
		// After rebinding the page is same-origin with itself: it may send
		// JSON, but under its own name, and without the token.
		{"rebound replay", adminReq{method: "POST", path: "/v1/replay/" + id, host: rebound, origin: "http://" + rebound, fetchSite: "same-origin",
			ctype: "application/json", body: `{"route":"app"}`}, 421},
		{"rebound devices", adminReq{method: "GET", path: "/v1/devices", host: rebound, fetchSite: "same-origin"}, 421},
		{"rebound trace", adminReq{method: "GET", path: "/v1/trace/" + id, host: rebound, fetchSite: "same-origin"}, 421},
		{"rebound metrics", adminReq{method: "GET", path: "/metrics", host: rebound, fetchSite: "same-origin"}, 421},
		{"rebound pprof", adminReq{method: "GET", path: "/debug/pprof/", host: rebound, fetchSite: "same-origin"}, 421},
		// A local process without the token, on loopback.
		{"local replay without token", adminReq{method: "POST", path: "/v1/replay/" + id, ctype: "application/json", body: `{"route":"app"}`}, 401},
	} {
		if code, body := doAdmin(t, admin, c.req); code != c.want {
			t.Errorf("%s: %d %q, want %d", c.name, code, strings.TrimSpace(body), c.want)
		}
	}
	if out := logs.String(); strings.Contains(out, `"msg":"replayed"`) || strings.Contains(out, `"msg":"redrove dead-lettered jobs"`) {
		t.Errorf("a refused request replayed or redrove:\n%s", out)
	}
	if n := len(h.wait(t, 1, time.Second)); n != 1 {
		t.Errorf("webhook got %d requests, want only the first delivery", n)
	}
}

// The gate logs a refusal (never the token) and does not let a loop of
// refusals flood the log.
func TestAdminRefusalLogged(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	var logs logbuf.Buffer
	a, _ := startLogged(t, testConfig(t, hs.URL), &logs)
	_, port, _ := net.SplitHostPort(a.AdminAddr().String())
	for range 20 {
		if code, _ := doAdmin(t, a.AdminAddr().String(), adminReq{method: "GET", path: "/v1/devices", host: "attacker.example:" + port, token: testAdminToken}); code != 421 {
			t.Fatalf("foreign Host: %d", code)
		}
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"admin request refused"`); n != 1 {
		t.Errorf("%d refusal lines for 20 refusals within a second, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `"reason":"host"`) || !strings.Contains(out, `"host":"attacker.example:`+port+`"`) {
		t.Errorf("refusal line lacks its reason or Host:\n%s", out)
	}
	if strings.Contains(out, testAdminToken) {
		t.Error("the log holds the admin token")
	}
}

// needChromium returns Debian's chromium, or skips (fails under CI=true or
// POSTERN_REQUIRE_STANDINS=1) when it is missing.
func needChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium in PATH: install Debian's (apt-get install chromium) to run the browser test of the admin API"
	if os.Getenv("CI") == "true" || os.Getenv("POSTERN_REQUIRE_STANDINS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// attackPage is what a page of another loopback origin can try against the
// admin API: HTML forms (urlencoded and text/plain, the two a CSRF uses),
// no-cors fetches, CORS fetches with JSON (which need a preflight) and
// reads. It reports what it could see to its own origin.
const attackPage = `<!doctype html><html><body>
<iframe name="a"></iframe><iframe name="b"></iframe>
<form id="fa" method="POST" target="a" action="ADMIN/v1/replay/ID?route=app"><input name="route" value="app"></form>
<form id="fb" method="POST" target="b" enctype="text/plain" action="ADMIN/v1/redrive/webhook"><input name='{"x":"' value='"}'></form>
<script>
const admin = "ADMIN";
const results = {};
async function attempt(name, p) {
  try {
    const r = await p;
    results[name] = r.type + " " + r.status + " " + (r.type === "opaque" ? "" : await r.text());
  } catch (e) {
    results[name] = "error " + e.name;
  }
}
function submitted(form, frame) {
  return new Promise(done => {
    document.getElementsByName(frame)[0].addEventListener("load", done, {once: true});
    document.getElementById(form).submit();
  });
}
(async () => {
  await attempt("no-cors replay", fetch(admin + "/v1/replay/ID", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: JSON.stringify({route: "app"})}));
  await attempt("no-cors redrive", fetch(admin + "/v1/redrive/webhook", {method: "POST", mode: "no-cors", body: "{}"}));
  await attempt("json replay", fetch(admin + "/v1/replay/ID", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({route: "app"})}));
  await attempt("read devices", fetch(admin + "/v1/devices"));
  await attempt("read metrics", fetch(admin + "/metrics"));
  await submitted("fa", "a");
  await submitted("fb", "b");
  results.done = "yes";
  await fetch("/report", {method: "POST", body: JSON.stringify(results)});
})();
</script></body></html>`

// A real browser (Debian's headless chromium) opens a page of another
// loopback origin that tries every way a page has to drive or read the
// admin API of a gateway with the default configuration. None replays,
// redrives or reads anything.
func TestAdminChromiumPageCannotDriveAPI(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser := needChromium(t)
	var logs logbuf.Buffer
	admin, id, h := bootDefaultAdmin(t, &logs)

	report := make(chan string, 1)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, strings.NewReplacer("ADMIN", "http://"+admin, "ID", id).Replace(attackPage))
		case "/report":
			b, _ := io.ReadAll(r.Body)
			select {
			case report <- string(b):
			default:
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer page.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--user-data-dir=" + t.TempDir(), page.URL + "/"}
	if os.Geteuid() == 0 {
		args = append([]string{"--no-sandbox"}, args...) // chromium refuses to run as root with its sandbox
	}
	cmd := exec.CommandContext(ctx, browser, args...)
	var stderr logbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	var got string
	select {
	case got = <-report:
	case <-ctx.Done():
		t.Fatalf("the page never reported; chromium said:\n%s", stderr.String())
	}
	t.Logf("what the page saw: %s", got)
	if !strings.Contains(got, `"done":"yes"`) {
		t.Fatalf("page report: %s", got)
	}
	// A page may send a no-cors request but never read its answer, and
	// never gets a CORS request past the preflight or a read answered.
	for _, want := range []string{`"no-cors replay":"opaque 0 "`, `"no-cors redrive":"opaque 0 "`,
		`"json replay":"error TypeError"`, `"read devices":"error TypeError"`, `"read metrics":"error TypeError"`} {
		if !strings.Contains(got, want) {
			t.Errorf("page report lacks %s: %s", want, got)
		}
	}
	// Every request was answered before the page reported: none replayed
	// or redrove, and the browser's requests met the gate.
	out := logs.String()
	if strings.Contains(out, `"msg":"replayed"`) || strings.Contains(out, `"msg":"redrove dead-lettered jobs"`) {
		t.Errorf("the page drove the API:\n%s", out)
	}
	if !strings.Contains(out, `"msg":"admin request refused"`) {
		t.Errorf("no refusal logged: did the browser's requests reach the gateway?\n%s", out)
	}
	if n := len(h.wait(t, 1, time.Second)); n != 1 {
		t.Errorf("webhook got %d requests, want only the first delivery", n)
	}
}

// After DNS rebinding, a page's requests reach the admin listener under the
// page's own name: chromium, told that rebind.test is 127.0.0.1, opens the
// API under that name and gets the 421, not the devices.
func TestAdminChromiumRebindingSeesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser := needChromium(t)
	var logs logbuf.Buffer
	admin, _, _ := bootDefaultAdmin(t, &logs)
	_, port, _ := net.SplitHostPort(admin)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--host-resolver-rules=MAP rebind.test 127.0.0.1",
		"--dump-dom", "http://rebind.test:" + port + "/v1/devices"}
	if os.Geteuid() == 0 {
		args = append([]string{"--no-sandbox"}, args...)
	}
	var stderr logbuf.Buffer
	cmd := exec.CommandContext(ctx, browser, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(string(out), "misdirected request") || strings.Contains(string(out), `"identity"`) {
		t.Errorf("the rebound page saw:\n%s", out)
	}
	if !strings.Contains(logs.String(), `"reason":"host"`) {
		t.Errorf("no refusal for the Host logged:\n%s", logs.String())
	}
}
