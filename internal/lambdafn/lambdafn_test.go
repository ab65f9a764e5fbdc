package lambdafn_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn"
	"github.com/postern/postern/internal/lambdafn/parsefn"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/lambdafn/webhookfn"
	"github.com/postern/postern/internal/webhook"
)

func awsConfig(t *testing.T) *config.Config {
	t.Helper()
	env := map[string]string{
		"POSTERN_BACKEND": "aws", "POSTERN_AWS_REGION": "us-east-1", "POSTERN_BUCKET": "b",
		"POSTERN_QUEUE_INBOUND": "https://sqs.us-east-1.amazonaws.com/123456789012/in",
		"POSTERN_QUEUE_WEBHOOK": "https://sqs.us-east-1.amazonaws.com/123456789012/wh",
		"POSTERN_QUEUE_RELAY":   "https://sqs.us-east-1.amazonaws.com/123456789012/re",
		"POSTERN_QUEUE_DSN":     "https://sqs.us-east-1.amazonaws.com/123456789012/dsn",
		"POSTERN_DATA_DIR":      t.TempDir(),
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A record concurrency the adapter cannot use stops the start, naming the
// variable; a good one starts.
func TestRecordConcurrencyEnv(t *testing.T) {
	cfg := awsConfig(t)
	log := slog.New(slog.DiscardHandler)
	for _, v := range []string{"0", "x", "101"} {
		t.Setenv(lambdafn.ConcurrencyEnv, v)
		if _, err := lambdafn.Handler(context.Background(), "parse", parsefn.Build, cfg, log); err == nil || !strings.Contains(err.Error(), lambdafn.ConcurrencyEnv) {
			t.Errorf("%s=%s: %v, want an error naming it", lambdafn.ConcurrencyEnv, v, err)
		}
	}
	t.Setenv(lambdafn.ConcurrencyEnv, "7")
	if _, err := lambdafn.Handler(context.Background(), "parse", parsefn.Build, cfg, log); err != nil {
		t.Errorf("%s=7: %v", lambdafn.ConcurrencyEnv, err)
	}
	cfg.Backend.Type = "local"
	if _, err := lambdafn.Handler(context.Background(), "parse", parsefn.Build, cfg, log); err == nil || !strings.Contains(err.Error(), "POSTERN_BACKEND=aws") {
		t.Errorf("local backend: %v, want an error saying to set POSTERN_BACKEND=aws", err)
	}
}

// A webhook job's budget is its route's timeout and the margin; a relay
// job's its transport's.
func TestBudgets(t *testing.T) {
	wb := webhookfn.Budget(map[string]webhook.Target{"fast": {Timeout: 5 * time.Second}, "dflt": {}})
	for body, want := range map[string]time.Duration{
		`{"route":"fast"}`:  5*time.Second + webhookfn.Margin,
		`{"route":"dflt"}`:  webhook.DefaultTimeout + webhookfn.Margin,
		`{"route":"other"}`: webhookfn.Margin,
		`{`:                 webhookfn.Margin,
	} {
		if got := wb([]byte(body)); got != want {
			t.Errorf("webhook budget of %s = %s, want %s", body, got, want)
		}
	}
	cfg := awsConfig(t)
	cfg.Routes = []config.Route{{Name: "ses", Relay: &config.Relay{Type: "ses"}}, {Name: "mx", Relay: &config.Relay{Type: "smtp"}}}
	rb := relayfn.Budget(cfg)
	if got, want := rb([]byte(`{"route":"ses"}`)), relayfn.TransportBudget("ses"); got != want {
		t.Errorf("relay budget via ses = %s, want %s", got, want)
	}
	if got, want := rb([]byte(`{"route":"mx"}`)), relayfn.TransportBudget("smtp"); got != want || got <= relayfn.TransportBudget("ses") {
		t.Errorf("relay budget via smtp = %s, want %s (above ses's)", got, want)
	}
}

// A function's Go heap is held under its Lambda memory; GOMEMLIMIT wins,
// and outside Lambda nothing is set.
func TestMemoryLimit(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	if n, ok := lambdafn.MemoryLimit(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")); !ok || n != 256<<20*85/100 {
		t.Errorf("256 MB function: limit %d %v", n, ok)
	}
	if _, ok := lambdafn.MemoryLimit(env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256", "GOMEMLIMIT", "100MiB")); ok {
		t.Error("GOMEMLIMIT set, yet a limit was chosen")
	}
	if _, ok := lambdafn.MemoryLimit(env()); ok {
		t.Error("a limit outside Lambda")
	}
}
