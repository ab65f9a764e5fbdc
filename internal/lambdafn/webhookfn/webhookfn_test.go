package webhookfn_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob/memblob"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/webhookfn"
	"github.com/postern/postern/internal/secrets"
	"github.com/postern/postern/internal/webhook"
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

func hook(name string, w config.Webhook) config.Route {
	return config.Route{Name: name, Match: config.Match{Recipients: []string{"*"}}, Webhook: &w}
}

// Each webhook and directory route becomes a target under its name,
// carrying what its section says; relay and reject routes do not.
func TestTargetsPerRoute(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	cfg := cfgWith(t,
		hook("app", config.Webhook{URL: "https://app.example.com/in", Timeout: config.Duration(7 * time.Second),
			MaxAge: config.Duration(time.Hour), Payload: "raw", FailureURL: "https://app.example.com/failed", AllowPrivate: true,
			Secrets: []string{"whsec_" + base64.StdEncoding.EncodeToString(key), "plain-text-secret"}}),
		hook("other", config.Webhook{URL: "https://other.example.com/in"}),
		config.Route{Name: "drop", Directory: &config.Directory{Path: "outbox"}},
		config.Route{Name: "mx", Relay: &config.Relay{Type: "file", Path: "relay"}},
		config.Route{Name: "no", Reject: true},
	)
	targets, err := webhookfn.Targets(cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 3 {
		t.Errorf("%d targets, want 3 (app, other, drop): %v", len(targets), targets)
	}
	app := targets["app"]
	if app.URL != "https://app.example.com/in" || app.Timeout != 7*time.Second || app.MaxAge != time.Hour ||
		app.Payload != "raw" || app.FailureURL != "https://app.example.com/failed" || !app.AllowPrivate || app.Dir != "" {
		t.Errorf("app target = %+v, want its route's url, timeout, max_age, payload, failure_url and allow_private", app)
	}
	if len(app.Secrets) != 2 || !bytes.Equal(app.Secrets[0], key) || string(app.Secrets[1]) != "plain-text-secret" {
		t.Errorf("app secrets = %q, want the decoded whsec_ key, then the plain text", app.Secrets)
	}
	if app.SecretSource != nil {
		t.Error("app has a SecretSource; its secrets were read at build")
	}
	if o := targets["other"]; o.URL != "https://other.example.com/in" || o.Timeout != 0 || len(o.Secrets) != 0 {
		t.Errorf("other target = %+v, want its own URL, no timeout (the default applies later), no secrets", o)
	}
	if d := targets["drop"]; d.Dir != filepath.Join(cfg.DataDir, "outbox") || d.URL != "" {
		t.Errorf("directory target = %+v, want Dir %s (under data_dir)", d, filepath.Join(cfg.DataDir, "outbox"))
	}
}

// An env: secret is read at build; one that is missing stops the build
// naming the route and the entry.
func TestTargetsEnvSecret(t *testing.T) {
	t.Setenv("POSTERN_TEST_WEBHOOK_SECRET", "from-the-environment")
	cfg := cfgWith(t, hook("app", config.Webhook{URL: "https://app.example.com/in",
		Secrets: []string{"literal", "env:POSTERN_TEST_WEBHOOK_SECRET"}}))
	targets, err := webhookfn.Targets(cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := targets["app"].Secrets; len(s) != 2 || string(s[1]) != "from-the-environment" {
		t.Errorf("secrets = %q, want the variable's value second", s)
	}

	cfg.Routes[0].Webhook.Secrets = []string{"literal", "env:POSTERN_TEST_WEBHOOK_UNSET"}
	_, err = webhookfn.Targets(cfg, true, nil)
	if err == nil || !strings.Contains(err.Error(), "routes app webhook.secrets[1]") || !strings.Contains(err.Error(), "POSTERN_TEST_WEBHOOK_UNSET") {
		t.Errorf("unset variable: %v, want an error naming routes app webhook.secrets[1] and the variable", err)
	}
}

// A whsec_ secret that is not base64 stops the build naming the route and
// the entry, and the error never carries the value.
func TestTargetsBadSecretNamesKeyNotValue(t *testing.T) {
	const bad = "whsec_not*base64*but-a-secret-all-the-same"
	cfg := cfgWith(t, hook("ok", config.Webhook{URL: "https://ok.example.com/"}),
		hook("app", config.Webhook{URL: "https://app.example.com/in", Secrets: []string{"fine", bad}}))
	_, err := webhookfn.Targets(cfg, true, nil)
	if err == nil {
		t.Fatal("a malformed whsec_ secret was accepted")
	}
	if !strings.Contains(err.Error(), "routes app webhook.secrets[1]") {
		t.Errorf("error %q does not name routes app webhook.secrets[1]", err)
	}
	if strings.Contains(err.Error(), "not*base64") {
		t.Errorf("error %q carries the secret", err)
	}
}

// With resolve false no secret is read: a process that never signs
// starts without them.
func TestTargetsWithoutResolve(t *testing.T) {
	cfg := cfgWith(t, hook("app", config.Webhook{URL: "https://app.example.com/in",
		Secrets: []string{"env:POSTERN_TEST_WEBHOOK_UNSET", "secretsmanager:postern/app"}}))
	targets, err := webhookfn.Targets(cfg, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := targets["app"]; a.URL != "https://app.example.com/in" || a.Secrets != nil || a.SecretSource != nil {
		t.Errorf("app target = %+v, want its URL and no secrets", a)
	}
}

// A secretsmanager: secret is not read at build: the target gets a
// SecretSource over the cache instead. Without a cache (a process that
// is not an AWS function) the build stops naming the route.
func TestTargetsSecretsManager(t *testing.T) {
	cfg := cfgWith(t, hook("app", config.Webhook{URL: "https://app.example.com/in",
		Secrets: []string{"secretsmanager:postern/app"}}))

	_, err := webhookfn.Targets(cfg, true, nil)
	if err == nil || !strings.Contains(err.Error(), "routes app webhook.secrets") || !strings.Contains(err.Error(), "env:NAME") {
		t.Errorf("no cache: %v, want an error naming routes app webhook.secrets and the other ways to write it", err)
	}

	// The cache has no client: a read at build would panic.
	cache := secrets.New(nil, 0, secrets.WithLogger(slog.New(slog.DiscardHandler)))
	targets, err := webhookfn.Targets(cfg, true, cache)
	if err != nil {
		t.Fatal(err)
	}
	a := targets["app"]
	if a.SecretSource == nil || len(a.Secrets) != 0 {
		t.Errorf("app target: SecretSource set %v, %d Secrets; want a SecretSource and no Secrets", a.SecretSource != nil, len(a.Secrets))
	}
}

// A job's budget is its route's timeout (the default when it sets none)
// plus Margin; a job naming no known route, or not JSON, gets Margin.
func TestBudgetFromTargets(t *testing.T) {
	cfg := cfgWith(t, hook("slow", config.Webhook{URL: "https://a.example.com/", Timeout: config.Duration(45 * time.Second)}),
		hook("dflt", config.Webhook{URL: "https://b.example.com/"}))
	targets, err := webhookfn.Targets(cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	budget := webhookfn.Budget(targets)
	for body, want := range map[string]time.Duration{
		`{"v":1,"route":"slow"}`: 45*time.Second + webhookfn.Margin,
		`{"route":"dflt"}`:       webhook.DefaultTimeout + webhookfn.Margin,
		`{"route":"gone"}`:       webhookfn.Margin,
		`not json`:               webhookfn.Margin,
	} {
		if got := budget([]byte(body)); got != want {
			t.Errorf("budget of %s = %s, want %s", body, got, want)
		}
	}
}

// Build makes a handler whose budget follows the configured routes.
func TestBuild(t *testing.T) {
	cfg := cfgWith(t, hook("slow", config.Webhook{URL: "https://a.example.com/", Timeout: config.Duration(45 * time.Second)}))
	st, err := webhookfn.Build(context.Background(), &lambdafn.Deps{Config: cfg, Store: memblob.New(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if st.Handler == nil || st.Budget == nil {
		t.Fatalf("stage = %+v, want a handler and a budget", st)
	}
	if got, want := st.Budget([]byte(`{"route":"slow"}`)), 45*time.Second+webhookfn.Margin; got != want {
		t.Errorf("budget = %s, want %s", got, want)
	}

	cfg.Routes[0].Webhook.Secrets = []string{"env:POSTERN_TEST_WEBHOOK_UNSET"}
	if _, err := webhookfn.Build(context.Background(), &lambdafn.Deps{Config: cfg, Store: memblob.New(), Log: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "routes slow webhook.secrets[0]") {
		t.Errorf("missing secret: %v, want the build to stop naming routes slow webhook.secrets[0]", err)
	}
}
