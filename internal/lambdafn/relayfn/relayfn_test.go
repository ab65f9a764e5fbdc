package relayfn_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/filerelay"
	"github.com/postern/postern/internal/relay/smtprelay"
	"github.com/postern/postern/internal/secrets"
)

// cfgWith is the default configuration with routes in place of its own,
// and data under a directory of the test's.
func cfgWith(t *testing.T, routes ...config.Route) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Routes = routes
	return cfg
}

// Each transport type has its own budget, with Margin; an unknown type
// gets the longest (smtp's), so a record is never started short.
func TestTransportBudget(t *testing.T) {
	for typ, want := range map[string]time.Duration{
		"smtp":  30*time.Second + relayfn.Margin,
		"ses":   15*time.Second + relayfn.Margin,
		"graph": 30*time.Second + relayfn.Margin,
		"gmail": 30*time.Second + relayfn.Margin,
		"file":  5*time.Second + relayfn.Margin,
		"":      30*time.Second + relayfn.Margin,
	} {
		if got := relayfn.TransportBudget(typ); got != want {
			t.Errorf("TransportBudget(%q) = %s, want %s", typ, got, want)
		}
	}
}

// A job's budget is its route's transport's; a job naming no relay
// route, or not JSON, gets Margin alone.
func TestBudgetReadsRoute(t *testing.T) {
	cfg := cfgWith(t,
		config.Route{Name: "mx", Relay: &config.Relay{Type: "smtp", Addr: "127.0.0.1:2587"}},
		config.Route{Name: "out", Relay: &config.Relay{Type: "file", Path: "out"}},
		config.Route{Name: "hook", Webhook: &config.Webhook{URL: "https://app.example.com/"}},
	)
	budget := relayfn.Budget(cfg)
	for body, want := range map[string]time.Duration{
		`{"v":1,"route":"mx"}`: relayfn.TransportBudget("smtp"),
		`{"route":"out"}`:      relayfn.TransportBudget("file"),
		`{"route":"hook"}`:     relayfn.Margin,
		`{"route":"gone"}`:     relayfn.Margin,
		`[`:                    relayfn.Margin,
	} {
		if got := budget([]byte(body)); got != want {
			t.Errorf("budget of %s = %s, want %s", body, got, want)
		}
	}
}

// Routes builds one transport per relay route, of the route's type and
// with its max_age and delay_notice; a file transport writes under
// data_dir.
func TestRoutes(t *testing.T) {
	cfg := cfgWith(t,
		config.Route{Name: "out", Relay: &config.Relay{Type: "file", Path: "out",
			MaxAge: config.Duration(2 * time.Hour), DelayNotice: config.Duration(30 * time.Minute)}},
		config.Route{Name: "mx", Relay: &config.Relay{Type: "smtp", Addr: "127.0.0.1:2587", TLS: "none"}},
		config.Route{Name: "hook", Webhook: &config.Webhook{URL: "https://app.example.com/"}},
	)
	routes, err := relayfn.Routes(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 2 {
		t.Errorf("%d routes, want 2 (out, mx): %v", len(routes), routes)
	}
	out := routes["out"]
	if _, ok := out.Transport.(*filerelay.Transport); !ok {
		t.Fatalf("out's transport is %T, want a file transport", out.Transport)
	}
	if out.MaxAge != 2*time.Hour || out.DelayNotice != 30*time.Minute {
		t.Errorf("out: max age %s, delay notice %s; want 2h and 30m", out.MaxAge, out.DelayNotice)
	}
	if _, ok := routes["mx"].Transport.(*smtprelay.Transport); !ok {
		t.Errorf("mx's transport is %T, want an SMTP transport", routes["mx"].Transport)
	}

	res, err := out.Transport.Send(context.Background(), &relay.Message{ID: "m1", From: "a@example.com",
		To: []relay.Rcpt{{Addr: "b@example.org"}}, Body: strings.NewReader("Subject: hi\r\n\r\nhello\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rcpts) == 0 {
		t.Errorf("send result %+v has no recipients", res)
	}
	files, err := filepath.Glob(filepath.Join(cfg.DataDir, "out", "m1.*.eml"))
	if err != nil || len(files) != 1 {
		t.Fatalf("files under data_dir/out: %v (%v), want the one message", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil || !strings.Contains(string(b), "hello") {
		t.Errorf("written message %q (%v), want the body", b, err)
	}
}

// NewTransport names the section it was given in every error, so the
// operator knows which relay to fix.
func TestNewTransportErrorsNameKey(t *testing.T) {
	t.Setenv("POSTERN_TEST_RELAY_PASSWORD", "")
	cfg := cfgWith(t)
	for _, c := range []struct {
		name  string
		relay config.Relay
		want  string
	}{
		{"unknown type", config.Relay{Type: "carrier-pigeon"}, "config: routes x relay.type"},
		{"no type", config.Relay{}, "config: routes x relay.type"},
		{"smtp without addr", config.Relay{Type: "smtp"}, "config: routes x relay: "},
		{"smtp user without password", config.Relay{Type: "smtp", Addr: "127.0.0.1:2587", Username: "u"}, "config: routes x relay: "},
		{"smtp bad tls", config.Relay{Type: "smtp", Addr: "127.0.0.1:2587", TLS: "sometimes"}, "config: routes x relay: "},
		{"unset env password", config.Relay{Type: "smtp", Addr: "127.0.0.1:2587", Username: "u", Password: "env:POSTERN_TEST_RELAY_PASSWORD"}, "config: routes x relay.password"},
		{"secretsmanager without cache", config.Relay{Type: "smtp", Addr: "127.0.0.1:2587", Username: "u", Password: "secretsmanager:postern/smtp"}, "config: routes x relay.password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, err := relayfn.NewTransport(context.Background(), cfg, "routes x relay", &c.relay, nil)
			if err == nil {
				t.Fatalf("built %T, want an error", tr)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q, want it to start %q", err, c.want)
			}
		})
	}
}

// A literal or env: password is read at build; a secretsmanager: one is
// not (the cache, which has no client here, would panic on a read).
func TestNewTransportPasswords(t *testing.T) {
	t.Setenv("POSTERN_TEST_RELAY_PASSWORD", "pw")
	cfg := cfgWith(t)
	cache := secrets.New(nil, 0, secrets.WithLogger(slog.New(slog.DiscardHandler)))
	for _, pw := range []string{"literal", "env:POSTERN_TEST_RELAY_PASSWORD", "secretsmanager:postern/smtp"} {
		r := config.Relay{Type: "smtp", Addr: "127.0.0.1:2587", Username: "u", Password: pw}
		tr, err := relayfn.NewTransport(context.Background(), cfg, "dsn.relay", &r, cache)
		if err != nil {
			t.Errorf("password %s: %v", pw, err)
			continue
		}
		if _, ok := tr.(*smtprelay.Transport); !ok {
			t.Errorf("password %s: transport %T, want an SMTP transport", pw, tr)
		}
	}
}

// Build makes a handler whose budget follows the routes' transports, and
// stops on a route it cannot build.
func TestBuild(t *testing.T) {
	cfg := cfgWith(t, config.Route{Name: "out", Relay: &config.Relay{Type: "file", Path: "out"}})
	d := &lambdafn.Deps{Config: cfg, Store: memblob.New(), Log: slog.New(slog.DiscardHandler)}
	st, err := relayfn.Build(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if st.Handler == nil || st.Budget == nil {
		t.Fatalf("stage = %+v, want a handler and a budget", st)
	}
	if got, want := st.Budget([]byte(`{"route":"out"}`)), relayfn.TransportBudget("file"); got != want {
		t.Errorf("budget = %s, want %s", got, want)
	}

	cfg.Routes = append(cfg.Routes, config.Route{Name: "bad", Relay: &config.Relay{Type: "smtp"}})
	if _, err := relayfn.Build(context.Background(), d); err == nil || !strings.Contains(err.Error(), "routes bad relay") {
		t.Errorf("bad route: %v, want an error naming routes bad relay", err)
	}
}
