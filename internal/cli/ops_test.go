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
)

// One message meets a failing webhook, then a working one: trace shows the
// whole timeline, replay delivers it once more under the same webhook-id,
// and devices shows who sent it.
func TestTraceReplayDevices(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the gateway as a subprocess")
	}
	var mu sync.Mutex
	var ids []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
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
  - name: app
    match: {recipients: ["*"]}
    webhook: {url: %q, secrets: ["s"], allow_private: true}
`, filepath.Join(dir, "data"), smtpAddr, adminAddr, hook.URL)), 0o600)
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

	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := Main(context.Background(), Env{Args: args, Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
		if code != 0 {
			t.Fatalf("gateway %v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	var timeline string
	deadline := time.Now().Add(10 * time.Second)
	for {
		timeline = run("trace", "-config", cfgPath, id)
		if strings.Contains(timeline, " done ") && strings.Count(timeline, "webhook") >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"gateway  received", "parse    done", "webhook  retry", "502", "webhook  done", "200"} {
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
	devs := run("devices", "-config", cfgPath)
	if !strings.Contains(devs, "local") || !strings.Contains(devs, "plaintext") || !strings.Contains(devs, "network") {
		t.Errorf("devices:\n%s", devs)
	}
	if out := run("redrive", "-config", cfgPath, "webhook"); !strings.Contains(out, "moved 0 job(s)") {
		t.Errorf("redrive: %s", out)
	}
}
