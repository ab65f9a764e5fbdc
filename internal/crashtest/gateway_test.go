//go:build crash

package crashtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/loadgen"
)

// gateway is the real gateway running as a child process, started again
// after each kill on the same configuration, data and port.
type gateway struct {
	t       *testing.T
	cfgPath string
	dataDir string
	addr    string
	logPath string // every run's output, appended

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// newGateway writes a configuration with one webhook route, "app", to
// hookURL and starts the gateway. extra is appended to the YAML.
func newGateway(t *testing.T, dataDir, hookURL, extra string) *gateway {
	t.Helper()
	dir := t.TempDir()
	addr, err := loadgen.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`hostname: gw.crash.test
data_dir: %s
listeners: [{name: smtp, addr: "%s"}]
admin: {addr: ""}
tls: {disable: true}
log: {level: info, format: json}
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook: {url: "%s", secrets: ["%s"], allow_private: true, timeout: 5s}
%s`, dataDir, addr, hookURL, hookSecret, extra)
	g := &gateway{t: t, cfgPath: filepath.Join(dir, "postern.yaml"), dataDir: dataDir, addr: addr, logPath: filepath.Join(dir, "gateway.log")}
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			b, _ := os.ReadFile(g.logPath)
			if d := os.Getenv("CRASHTEST_LOG_DIR"); d != "" {
				// Keep the whole log for a closer look.
				os.WriteFile(filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_")+".log"), b, 0o600)
			}
			var problems []string
			for line := range strings.Lines(string(b)) {
				if (strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`)) && len(problems) < 40 {
					problems = append(problems, line)
				}
			}
			t.Logf("gateway warnings and errors (first %d):\n%s", len(problems), strings.Join(problems, ""))
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("gateway log (tail):\n%s", b)
		}
	})
	g.start()
	return g
}

// start runs the gateway and waits for its SMTP greeting.
func (g *gateway) start() {
	g.t.Helper()
	out, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		g.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+g.cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		g.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(exited) }()
	g.mu.Lock()
	g.cmd, g.exited = cmd, exited
	g.starts++
	g.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := loadgen.Dial(context.Background(), g.addr, "probe.crash.test", 2*time.Second)
		if err == nil {
			s.Close()
			return
		}
		select {
		case <-exited:
			g.t.Fatalf("gateway exited at start (run %d); see its log", g.starts)
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("gateway did not answer on %s: %v", g.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the gateway: no drain, no flush, no deferred close.
func (g *gateway) kill() {
	g.mu.Lock()
	cmd, exited := g.cmd, g.exited
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// alive reports whether the current run is still going.
func (g *gateway) alive() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.exited == nil {
		return false
	}
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// stop ends the gateway gracefully (SIGTERM), killing it after a while.
func (g *gateway) stop() {
	g.mu.Lock()
	cmd, exited := g.cmd, g.exited
	g.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// logCount counts the lines of the gateway's output that hold all of words.
func (g *gateway) logCount(words ...string) int {
	b, _ := os.ReadFile(g.logPath)
	n := 0
	for line := range strings.Lines(string(b)) {
		all := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}
