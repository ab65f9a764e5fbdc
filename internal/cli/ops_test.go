package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/apispec"
)

// One message meets a failing webhook, then a working one: trace shows the
// whole timeline, replay delivers it once more under the same webhook-id
// (and refuses a route the message does not match), and devices shows who
// sent it. The commands use the admin token the gateway generated into
// data_dir, and say what to do when theirs is not the gateway's.
func TestTraceReplayDevices(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the gateway as a subprocess")
	}
	var mu sync.Mutex
	var ids []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := apispec.ValidateWebhook(r.Header, b); err != nil {
			t.Errorf("the webhook request breaks the contract: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, r.Header.Get("webhook-id"))
		if len(ids) == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer hook.Close()
	waitHooks := func(n int) []string {
		deadline := time.Now().Add(40 * time.Second)
		for {
			mu.Lock()
			got := append([]string(nil), ids...)
			mu.Unlock()
			if len(got) >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("webhook got %d requests, want %d", len(got), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	dir := t.TempDir()
	smtpAddr, adminAddr := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`hostname: gw.test
data_dir: %s
listeners: [{name: smtp, addr: %q}]
admin: {addr: %q}
routes:
  - name: other
    match: {recipients: ["*@other.test"]}
    webhook: {url: %q, secrets: ["s"], allow_private: true}
  - name: app
    match: {recipients: ["*"]}
    webhook: {url: %q, secrets: ["s"], allow_private: true}
`, filepath.Join(dir, "data"), smtpAddr, adminAddr, hook.URL, hook.URL)), 0o600)
	startChild(t, cfgPath, smtpAddr)

	c, err := smtp.Dial(smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Mail("scanner@lan", nil)
	c.Rcpt("ops@app.test", nil)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: scan\r\n\r\nx\r\n")
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	id := strings.TrimPrefix(resp.StatusText, "2.0.0 OK ")
	got := waitHooks(2)
	if got[0] != id+".app" || got[1] != id+".app" {
		t.Fatalf("webhook ids %v", got)
	}

	call := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Main(context.Background(), Env{Args: args, Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		return code, out.String(), errb.String()
	}
	run := func(args ...string) string {
		t.Helper()
		code, out, errs := call(args...)
		if code != 0 {
			t.Fatalf("gateway %v: exit %d: %s", args, code, errs)
		}
		return out
	}
	fail := func(want string, args ...string) {
		t.Helper()
		if code, out, errs := call(args...); code != 1 || !strings.Contains(errs, want) {
			t.Errorf("gateway %v: exit %d, stdout %q, stderr %q; want exit 1 and %q", args, code, out, errs, want)
		}
	}
	var timeline string
	deadline := time.Now().Add(10 * time.Second)
	for {
		timeline = run("trace", "-config", cfgPath, id)
		if strings.Contains(timeline, "webhook  delivered") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"gateway  received", "parse    done", "webhook  retry", "502", "webhook  delivered", "200"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("trace lacks %q:\n%s", want, timeline)
		}
	}
	if out := run("replay", "-config", cfgPath, "-route", "app", id); !strings.Contains(out, "queued for route app") {
		t.Fatalf("replay: %s", out)
	}
	if got := waitHooks(3); got[2] != id+".app" {
		t.Fatalf("replayed delivery carried webhook-id %q", got[2])
	}
	fail("409 Conflict: route other matches none of message", "replay", "-config", cfgPath, "-route", "other", id)
	devs := run("devices", "-config", cfgPath)
	if !strings.Contains(devs, "local") || !strings.Contains(devs, "plaintext") || !strings.Contains(devs, "network") {
		t.Errorf("devices:\n%s", devs)
	}
	if out := run("redrive", "-config", cfgPath, "webhook"); !strings.Contains(out, "moved 0 job(s)") {
		t.Errorf("redrive: %s", out)
	}

	// A configuration with another data_dir has no token, or another one:
	// the gateway refuses, and the command says where it looked.
	otherData := filepath.Join(dir, "other")
	otherCfg := filepath.Join(dir, "other.yaml")
	os.WriteFile(otherCfg, []byte(fmt.Sprintf("hostname: gw.test\ndata_dir: %s\nadmin: {addr: %q}\n", otherData, adminAddr)), 0o600)
	want401 := "401 Unauthorized: its admin token is neither admin.token nor in " + filepath.Join(otherData, "admin-token")
	fail(want401, "devices", "-config", otherCfg)
	os.MkdirAll(otherData, 0o700)
	tokenFile := filepath.Join(otherData, "admin-token")
	os.WriteFile(tokenFile, []byte(strings.Repeat("x", 43)+"\n"), 0o600)
	fail(want401, "devices", "-config", otherCfg)
	fail(want401, "redrive", "-config", otherCfg, "webhook")
	os.Chmod(tokenFile, 0o644)
	fail("chmod 600 "+tokenFile, "devices", "-config", otherCfg)
	// The token file is only for the gateway's user.
	if fi, err := os.Stat(filepath.Join(dir, "data", "admin-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the gateway's token file: %v, %v", fi, err)
	}
}
