package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
)

// The startup line names every listener's bound address and the admin
// address as host:port strings an operator can paste into a client, not as
// Go structs and not as the configured port 0.
func TestStartupLogNamesEveryAddressAsHostPort(t *testing.T) {
	t.Parallel()
	_, hs := newHook(t)
	cfg := testConfig(t, hs.URL)
	cfg.Listeners = append(cfg.Listeners, config.Listener{Name: "second", Addr: "127.0.0.1:0", Mode: "smtp"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logWatch{msgs: make(chan string, 1000)}
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx, 0) }()
	t.Cleanup(func() { cancel(); <-ran })
	logs.wait(t, "postern started")

	var line struct {
		SMTP  map[string]any
		Admin any
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"postern started"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]string{"smtp": a.SMTPAddrs()[0].String(), "second": a.SMTPAddrs()[1].String()}
	if len(line.SMTP) != len(want) {
		t.Errorf("smtp = %v, want %v", line.SMTP, want)
	}
	for name, addr := range want {
		if got, ok := line.SMTP[name].(string); !ok || got != addr || strings.HasSuffix(got, ":0") {
			t.Errorf("smtp[%s] = %#v, want %q", name, line.SMTP[name], addr)
		}
	}
	if got, ok := line.Admin.(string); !ok || got != a.AdminAddr().String() {
		t.Errorf("admin = %#v, want %q", line.Admin, a.AdminAddr().String())
	}
}
