//go:build crash

package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
)

// resources is one sample of what the process holds.
type resources struct {
	goroutines int
	fds        int
	heap       uint64 // live heap after a full GC
}

func (r resources) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %.1f MiB heap", r.goroutines, r.fds, float64(r.heap)/(1<<20))
}

func sample(t *testing.T) resources {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return resources{goroutines: runtime.NumGoroutine(), fds: len(ents), heap: ms.HeapAlloc}
}

// settle samples until goroutines and fds are back within slack of base,
// or timeout passes, and returns the last sample: connections and workers
// wind down asynchronously.
func settle(t *testing.T, base resources, slack int, timeout time.Duration) resources {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := sample(t)
		if (s.goroutines <= base.goroutines+slack && s.fds <= base.fds+slack) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSoakResourcesReturnToBaseline runs the whole local-mode gateway in this
// process for POSTERN_SOAK_DURATION (default 30s) in rounds: 8 sessions of
// mixed-size mail, some sessions cut off mid-DATA, everything delivered to a
// webhook. After every round the goroutines, file descriptors and live heap
// must be back near where they were after the warm-up round, and after the
// gateway stops, near where they were before it started.
//
// It is not parallel: it counts the whole process's goroutines and fds.
func TestSoakResourcesReturnToBaseline(t *testing.T) {
	dur := 30 * time.Second
	if v := os.Getenv("POSTERN_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("POSTERN_SOAK_DURATION: %v", err)
		}
		dur = d
	}
	const slack = 8
	pre := sample(t)
	rcv := newReceiver(t)
	dir := t.TempDir()
	addr := "127.0.0.1:0"
	cfgPath := filepath.Join(dir, "postern.yaml")
	yaml := fmt.Sprintf(`hostname: gw.soak.test
data_dir: %s
listeners: [{name: smtp, addr: "%s"}]
admin: {addr: "127.0.0.1:0"}
tls: {disable: true}
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook: {url: "%s", secrets: ["%s"], allow_private: true, timeout: 5s}
`, filepath.Join(dir, "data"), addr, rcv.URL(), hookSecret)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, 10*time.Second) }()
	shutdown := sync.OnceValue(func() error { cancel(); return <-done })
	defer shutdown()
	smtpAddr := a.SMTPAddrs()[0].String()

	sizes := []int{1 << 10, 8 << 10, 40 << 10, 256 << 10}
	messages := 0
	// Each round checks its own messages and then forgets them, so that
	// the test itself holds no state that grows with the run.
	round := func(i int) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		for range 3 {
			abortMidData(t, smtpAddr)
		}
		l := newLedger()
		send(rctx, t, sendPlan{addr: smtpAddr, prefix: fmt.Sprintf("soak%04d", i), clients: 8, perClient: 8,
			size: func(c, m int) int { return sizes[(c+m+i)%len(sizes)] }}, l)
		waitDelivered(t, l, rcv, time.Minute)
		messages += l.ackedCount()
		rcv.reset()
	}

	round(0) // warm-up: pools, caches, idle connections
	base := settle(t, sample(t), 0, time.Second)
	t.Logf("baseline after warm-up: %s (before the gateway: %s)", base, pre)
	start := time.Now()
	var last resources
	rounds := 0
	for i := 1; time.Since(start) < dur && !t.Failed(); i++ {
		round(i)
		rounds++
		last = settle(t, base, slack, 10*time.Second)
		if i%5 == 0 {
			t.Logf("round %d: %s", i, last)
		}
	}
	t.Logf("%d rounds, %d messages in %s; end: %s", rounds, messages, time.Since(start).Round(time.Second), last)
	if last.goroutines > base.goroutines+slack {
		t.Errorf("goroutines grew from %d to %d\n%s", base.goroutines, last.goroutines, goroutineDump())
	}
	if last.fds > base.fds+slack {
		t.Errorf("file descriptors grew from %d to %d: %s", base.fds, last.fds, fdList())
	}
	// About 2 MiB over a 30s run catches a leak of a few hundred bytes a
	// message; longer runs catch smaller ones.
	if limit := base.heap + base.heap/4 + 2<<20; last.heap > limit {
		t.Errorf("live heap grew from %.1f MiB to %.1f MiB", float64(base.heap)/(1<<20), float64(last.heap)/(1<<20))
	}

	// Stopped, the gateway gives back everything it took.
	if err := shutdown(); err != nil {
		t.Errorf("Run: %v", err)
	}
	rcv.srv.CloseClientConnections()
	after := settle(t, pre, slack, 10*time.Second)
	t.Logf("after stop: %s", after)
	if after.goroutines > pre.goroutines+slack {
		t.Errorf("goroutines left after stop: %d, before start %d\n%s", after.goroutines, pre.goroutines, goroutineDump())
	}
	if after.fds > pre.fds+slack {
		t.Errorf("file descriptors left after stop: %d, before start %d: %s", after.fds, pre.fds, fdList())
	}
}

// abortMidData opens a session, starts a message and hangs up halfway
// through it, as a device losing power would.
func abortMidData(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for _, cmd := range []string{"", "EHLO abort.soak.test", "MAIL FROM:<device@lan.test>", "RCPT TO:<ops@app.test>", "DATA"} {
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("abort session, after %q: %v", cmd, err)
			}
			if len(line) < 4 || line[3] != '-' {
				break
			}
		}
	}
	c.Write([]byte("Subject: cut off\r\n\r\n" + strings.Repeat("half a message\r\n", 2000)))
}

func goroutineDump() string {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	if b.Len() > 8000 {
		b.Truncate(8000)
	}
	return b.String()
}

func fdList() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		out = append(out, target)
	}
	return strings.Join(out, " ")
}
