package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/apispec"
	"github.com/postern/postern/internal/standin"
)

// The durability test runs the real gateway as a child process (this test
// binary, re-executed) so that it can be killed with SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("POSTERN_TEST_CHILD") == "1" {
		os.Exit(Main(context.Background(), Env{
			Args: []string{"-config", os.Getenv("POSTERN_TEST_CONFIG")}, Getenv: os.Getenv,
			Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		}))
	}
	standin.Main(m) // stops the S3 stand-in TestGatewayReadsConfigURI starts
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startChild(t *testing.T, cfgPath, smtpAddr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "POSTERN_TEST_CHILD=1", "POSTERN_TEST_CONFIG="+cfgPath)
	cmd.Stdout = testWriter{t}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", smtpAddr)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not listen on %s", smtpAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestAcceptedMessageSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts the gateway as a subprocess")
	}
	var up atomic.Bool // the application is down until the restart
	var mu sync.Mutex
	delivered := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := apispec.ValidateWebhook(r.Header, b); err != nil {
			t.Errorf("the webhook request breaks the contract: %v", err)
		}
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		delivered[r.Header.Get("webhook-id")]++
		mu.Unlock()
	}))
	defer hook.Close()

	dir := t.TempDir()
	smtpAddr := freePort(t)
	cfgPath := filepath.Join(dir, "postern.yaml")
	cfg := fmt.Sprintf(`hostname: gw.test
data_dir: %s
listeners: [{name: smtp, addr: "%s"}]
admin: {addr: ""}
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook: {url: "%s", secrets: ["test-secret"], allow_private: true}
`, filepath.Join(dir, "data"), smtpAddr, hook.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	child := startChild(t, cfgPath, smtpAddr)
	var ids []string
	for i := range 5 {
		c, err := smtp.Dial(smtpAddr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("plc@lan", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("ops@app.test", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "Subject: alarm %d\r\n\r\ntank %d high\r\n", i, i)
		resp, err := w.CloseWithResponse()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		ids = append(ids, strings.TrimPrefix(resp.StatusText, "2.0.0 OK "))
		c.Close()
	}
	// Every message got its 250; now the process dies without any chance to
	// flush or shut down.
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	up.Store(true)
	startChild(t, cfgPath, smtpAddr)
	deadline := time.Now().Add(45 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for _, id := range ids {
			if delivered[id+".app"] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages not delivered after restart: %v", missing, len(ids), delivered)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
