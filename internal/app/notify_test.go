package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/version"
)

// fakeNotifier records what the gateway tells its service manager; ready
// and stopping run inside the calls.
type fakeNotifier struct {
	mu       sync.Mutex
	events   []string
	ready    func() error
	stopping func() error
}

func (f *fakeNotifier) record(e string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

func (f *fakeNotifier) Ready() error    { f.record("ready"); return f.ready() }
func (f *fakeNotifier) Stopping() error { f.record("stopping"); return f.stopping() }

// READY comes only once a client connecting gets the greeting (systemd
// would route mail to the unit from then on), and STOPPING once, when the
// drain begins, before the gateway has stopped. The startup line names the
// build.
func TestNotifierHearsReadyWhenServingAndStoppingAtDrain(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	logs := &logWatch{msgs: make(chan string, 1000)}
	var a *app.App
	greeted := make(chan string, 1)
	n := &fakeNotifier{
		ready: func() error {
			c, err := net.DialTimeout("tcp", a.SMTPAddrs()[0].String(), 5*time.Second)
			if err != nil {
				greeted <- err.Error()
				return nil
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			greeted <- line
			return nil
		},
		stopping: func() error { return context.Canceled }, // a failure is logged, nothing else
	}
	var err error
	a, err = app.New(cfg, slog.New(slog.NewJSONHandler(logs, nil)), app.WithNotifier(n))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx, time.Second) }()
	select {
	case g := <-greeted:
		if !strings.HasPrefix(g, "220 ") {
			t.Errorf("a client connecting when Ready was called got %q, want the 220 greeting", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ready never called")
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	events := strings.Join(n.events, ",")
	n.mu.Unlock()
	if events != "ready,stopping" {
		t.Errorf("notifier heard %s, want ready,stopping", events)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"service manager not told"`) {
		t.Error("a failed STOPPING was not logged")
	}
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, `"msg":"postern started"`) {
			continue
		}
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		if line["version"] != version.Version || line["commit"] != version.Commit || line["build_date"] != version.Date {
			t.Errorf("startup line %s does not name the build (version %q, commit %q, build_date %q)", l, version.Version, version.Commit, version.Date)
		}
		return
	}
	t.Error("no postern started line")
}
