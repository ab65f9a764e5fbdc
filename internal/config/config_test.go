package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "postern.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noenv(string) string { return "" }

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	c, err := Load("", noenv)
	if err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if c.Listeners[0].Addr != "127.0.0.1:2525" || c.Routes[0].Directory == nil || c.Identities[0].Networks[0] != "127.0.0.0/8" {
		t.Errorf("unexpected default: %+v", c)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Setenv("POSTERN_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	c, err := Load("../../infra/examples/local.yaml", noenv)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if c.Routes[0].Webhook.Timeout.D() != 30*time.Second || c.Routes[0].Webhook.MaxAge.D() != 24*time.Hour {
		t.Errorf("durations not parsed: %+v", c.Routes[0].Webhook)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	t.Parallel()
	_, err := Load(write(t, "hostname: a\nlimts:\n  max_recipients: 3\n"), noenv)
	if err == nil || !strings.Contains(err.Error(), "limts") || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("want an unknown-key error naming limts, got %v", err)
	}
	_, err = Load(write(t, "routes:\n  - name: a\n    match: {recipients: [\"*\"]}\n    directory: {path: x, mode: 1}\n"), noenv)
	if err == nil || !strings.Contains(err.Error(), "mode") {
		t.Fatalf("nested unknown key not refused: %v", err)
	}
}

func TestErrorsNameKeyAndFix(t *testing.T) {
	t.Parallel()
	cfg := `
listeners:
  - name: smtp
    addr: "2525"
identities:
  - name: cams
    networks: ["10.0.0.0/33"]
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook:
      url: "ftp://x"
      secrets: []
limits:
  command_timeout: 5 minutes
delivery:
  burst_lag: 2h
`
	_, err := Load(write(t, cfg), noenv)
	if err == nil || !strings.Contains(err.Error(), "limits.command_timeout") && !strings.Contains(err.Error(), "duration") {
		t.Fatalf("bad duration not reported: %v", err)
	}
	cfg = strings.Replace(cfg, "5 minutes", "5m", 1)
	_, err = Load(write(t, cfg), noenv)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{
		`listeners[0].addr: "2525" is not host:port`,
		`identities[0].networks[0]: "10.0.0.0/33" is not a CIDR`,
		`routes[0].webhook.url: "ftp://x" is not an http(s) URL`,
		`routes[0].webhook.secrets: is empty`,
		`delivery.burst_lag: 2h0m0s must be between 0 (off) and 1m`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestListsReplaceDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(write(t, "routes:\n  - name: only\n    match: {recipients: [\"a@b\"]}\n    reject: true\n"), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 1 || c.Routes[0].Name != "only" {
		t.Errorf("routes = %+v", c.Routes)
	}
	if len(c.Listeners) != 1 {
		t.Errorf("listeners default lost: %+v", c.Listeners)
	}
}

func TestRouteNeedsOneTarget(t *testing.T) {
	t.Parallel()
	_, err := Load(write(t, "routes:\n  - name: x\n    match: {recipients: [\"*\"]}\n"), noenv)
	if err == nil || !strings.Contains(err.Error(), "routes[0]: needs exactly one target") {
		t.Fatalf("got %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{"POSTERN_SMTP_ADDR": "127.0.0.1:0", "POSTERN_DATA_DIR": "/tmp/x", "POSTERN_MAX_MESSAGE_BYTES": "2048"}
	c, err := Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Listeners[0].Addr != "127.0.0.1:0" || c.DataDir != "/tmp/x" || c.Limits.MaxMessageBytes != 2048 {
		t.Errorf("overrides not applied: %+v", c)
	}
	env["POSTERN_MAX_MESSAGE_BYTES"] = "lots"
	if _, err := Load("", func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "POSTERN_MAX_MESSAGE_BYTES") {
		t.Fatalf("bad override not named: %v", err)
	}
}

func TestResolveSecret(t *testing.T) {
	t.Setenv("PSTRN_TEST_SECRET", "from-env")
	p := filepath.Join(t.TempDir(), "s")
	os.WriteFile(p, []byte("from-file\n"), 0o600)
	for in, want := range map[string]string{"literal": "literal", "env:PSTRN_TEST_SECRET": "from-env", "file:" + p: "from-file"} {
		got, err := ResolveSecret(in)
		if err != nil || got != want {
			t.Errorf("ResolveSecret(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ResolveSecret("env:PSTRN_UNSET_SECRET"); err == nil || !strings.Contains(err.Error(), "PSTRN_UNSET_SECRET is not set") {
		t.Errorf("unset env secret: %v", err)
	}
}

// A secret is read only where it is used: validation checks how it is
// written, so a process that never uses it need not be given it.
func TestSecretsAreNotReadAtValidation(t *testing.T) {
	t.Parallel()
	path := write(t, "routes:\n  - name: app\n    match: {recipients: [\"*\"]}\n    webhook: {url: \"https://app.example/in\", secrets: [\"env:PSTRN_NEVER_SET_SECRET\"]}\n")
	if _, err := Load(path, noenv); err != nil {
		t.Fatalf("unset secret variable failed validation: %v", err)
	}
	path = write(t, "routes:\n  - name: app\n    match: {recipients: [\"*\"]}\n    webhook: {url: \"https://app.example/in\", secrets: [\"env:\"]}\n")
	if _, err := Load(path, noenv); err == nil || !strings.Contains(err.Error(), "routes[0].webhook.secrets[0]") {
		t.Fatalf("malformed secret reference: %v", err)
	}
}
