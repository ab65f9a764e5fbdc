package templatetest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
)

// fakeSecret stands in for a Secrets Manager value; it is a valid webhook
// signing key and a valid password.
const fakeSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// lambdaEnvLimit is Lambda's cap on a function's environment: keys and
// values together.
const lambdaEnvLimit = 4096

func exampleConfigPath(t testing.TB) string {
	return filepath.Join(repoRoot(t), "infra", "examples", "aws.yaml")
}

// deployedConfig is the example configuration as scripts/deploy stores it:
// full-line comments and blank lines removed.
func deployedConfig(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(exampleConfigPath(t))
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n") + "\n"
}

var resourceRef = regexp.MustCompile(`\$\{([A-Za-z0-9]+)\}`)

// runtimeValue is what a process sees for a resolved template value: the
// SSM parameter's text, the secret's value, and realistic names and URLs
// for the stack's resources.
func runtimeValue(v, configText string) string {
	switch {
	case strings.HasPrefix(v, "{{resolve:ssm:"):
		return configText
	case strings.HasPrefix(v, "{{resolve:secretsmanager:"):
		return fakeSecret
	}
	return resourceRef.ReplaceAllStringFunc(v, func(m string) string {
		id := m[2 : len(m)-1]
		if strings.HasSuffix(id, "Queue") || strings.HasSuffix(id, "DLQ") {
			return "https://sqs.us-east-1.amazonaws.com/123456789012/postern-" + id + "-1A2B3C4D5E6F"
		}
		return "postern-" + strings.ToLower(id) + "-1a2b3c4d5e6f"
	})
}

// envRefs lists the env:NAME references in a configuration.
func envRefs(t testing.TB, text string) []string {
	t.Helper()
	doc, err := DecodeYAML([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			if name, ok := strings.CutPrefix(x, "env:"); ok {
				refs = append(refs, name)
			}
		}
	}
	walk(doc)
	slices.Sort(refs)
	return slices.Compact(refs)
}

type process struct {
	name  string
	stage string // "" for the gateway
	env   map[string]string
}

// processes returns the environment of every process the stack runs, as
// the process sees it.
func processes(t *testing.T, r *Resolved, configText string) []process {
	t.Helper()
	var out []process
	for _, s := range stages {
		env := map[string]string{}
		for k, v := range functionEnv(r.Resources[s.function]) {
			env[k] = runtimeValue(v, configText)
		}
		out = append(out, process{s.function, s.name, env})
	}
	c := gatewayContainer(t, r)
	env := map[string]string{}
	for k, v := range containerEnv(c) {
		env[k] = runtimeValue(v, configText)
	}
	for _, s := range asList(c["Secrets"]) {
		env[scalarString(dig(s, "Name"))] = fakeSecret
	}
	return append(out, process{"gateway", "", env})
}

// TestTemplateEnvironmentLoadsConfig: with the example configuration
// deployed, every process the template defines gets the environment it
// reads, nothing it does not know, and loads a valid aws-backend
// configuration; each function then builds its stage handler.
//
// Not parallel: configuration secrets (env:NAME) are read from the
// process environment, so the test sets them with t.Setenv.
func TestTemplateEnvironmentLoadsConfig(t *testing.T) {
	tpl := loadTemplate(t)
	text := deployedConfig(t)
	refs := envRefs(t, text)
	if len(refs) == 0 {
		t.Fatal("the example configuration references no env: secrets; the test would prove nothing about them")
	}
	// The secrets the template offers configurations, as env:NAME.
	known := map[string]bool{"POSTERN_CONFIG_YAML": true, "POSTERN_WEBHOOK_SECRET": true, "POSTERN_RELAY_PASSWORD": true}
	for _, kv := range config.EnvNames() {
		known[kv[0]] = true
	}
	for _, ref := range refs {
		known[ref] = true
	}
	need := []string{"POSTERN_CONFIG_YAML", "POSTERN_BACKEND", "POSTERN_DATA_DIR", "POSTERN_BUCKET",
		"POSTERN_QUEUE_INBOUND", "POSTERN_QUEUE_WEBHOOK", "POSTERN_QUEUE_RELAY", "POSTERN_QUEUE_DSN"}
	// Functions dead-letter jobs that can never succeed themselves.
	needFunction := []string{"POSTERN_DLQ_INBOUND", "POSTERN_DLQ_WEBHOOK", "POSTERN_DLQ_RELAY", "POSTERN_DLQ_DSN"}
	need = append(need, refs...)

	// Keep openAWS from setting AWS_REGION for the whole test binary.
	t.Setenv("AWS_REGION", "us-east-1")
	r := resolveWith(t, tpl, features)
	for _, p := range processes(t, r, text) {
		t.Run(p.name, func(t *testing.T) {
			want := need
			if p.name != "gateway" {
				want = append(slices.Clone(need), needFunction...)
			}
			for _, k := range want {
				if _, ok := p.env[k]; !ok {
					t.Errorf("%s is not set", k)
				}
			}
			size := 0
			for k, v := range p.env {
				size += len(k) + len(v)
				if strings.HasPrefix(k, "POSTERN_") && !known[k] {
					t.Errorf("%s is set but nothing reads it (not a config.EnvNames override or an env: reference)", k)
				}
				if strings.Contains(v, "${") || strings.Contains(v, "{{resolve") {
					t.Errorf("%s = %q still holds a template reference", k, v)
				}
			}
			if p.stage != "" && size > lambdaEnvLimit-512 {
				t.Errorf("environment is %d bytes; Lambda allows %d in all, keep 512 spare", size, lambdaEnvLimit)
			}
			for _, ref := range refs {
				t.Setenv(ref, p.env[ref])
			}
			getenv := func(k string) string { return p.env[k] }
			cfg, err := config.Load("", getenv)
			if err != nil {
				t.Fatalf("the template's environment does not load: %v", err)
			}
			if cfg.Backend.Type != "aws" || cfg.Backend.AWS.Queues.Inbound != p.env["POSTERN_QUEUE_INBOUND"] || cfg.Backend.AWS.Bucket != p.env["POSTERN_BUCKET"] {
				t.Errorf("backend %+v does not come from the template", cfg.Backend)
			}
			if cfg.Hostname != features["MailHostname"] {
				t.Errorf("hostname %q, want MailHostname %q", cfg.Hostname, features["MailHostname"])
			}
			if p.stage == "" {
				return
			}
			if cfg.DataDir != "/tmp/postern" {
				t.Errorf("data_dir %q; Lambda can write only under /tmp", cfg.DataDir)
			}
			cfg.DataDir = t.TempDir()
			log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
			h, err := app.LambdaHandler(context.Background(), p.stage, cfg, log)
			if err != nil || h == nil {
				t.Fatalf("stage %s does not start with the template's environment: %v", p.stage, err)
			}
		})
	}

	// Without the secret parameters the webhook stage must fail at start,
	// naming the variable, rather than run unsigned; a stage that never
	// signs (parse) starts without it.
	for _, ref := range refs {
		t.Setenv(ref, "")
	}
	r = resolveWith(t, tpl, defaults)
	p := processes(t, r, text)[0]
	cfg, err := config.Load("", func(k string) string { return p.env[k] })
	if err != nil {
		t.Fatalf("configuration without secrets: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	if _, err := app.LambdaHandler(context.Background(), "webhook", cfg, log); err == nil || !strings.Contains(err.Error(), refs[0]) {
		t.Errorf("without WebhookSecretArn the webhook stage started or did not name %s: %v", refs[0], err)
	}
	if _, err := app.LambdaHandler(context.Background(), "parse", cfg, log); err != nil {
		t.Errorf("the parse stage needs no secret but did not start: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// TestExampleConfigFitsTheStack checks infra/examples/aws.yaml against
// what the template provides: listeners on the container ports with the
// modes the load balancer's ports promise and PROXY protocol from the VPC,
// the admin listener where the health probe looks, and no keys the stack
// sets itself.
func TestExampleConfigFitsTheStack(t *testing.T) {
	t.Parallel()
	text := deployedConfig(t)
	doc, err := DecodeYAML([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"backend", "data_dir"} {
		if dig(doc, key) != nil {
			t.Errorf("the example sets %s, which the stack sets through the environment", key)
		}
	}
	listeners := asList(dig(doc, "listeners"))
	if len(listeners) != len(smtpPorts) {
		t.Fatalf("%d listeners, want %d", len(listeners), len(smtpPorts))
	}
	for _, sp := range smtpPorts {
		found := false
		for _, l := range listeners {
			addr := scalarString(dig(l, "addr"))
			if !strings.HasSuffix(addr, ":"+strconv.Itoa(sp.container)) {
				continue
			}
			found = true
			if host, _, _ := strings.Cut(addr, ":"); host != "" && host != "0.0.0.0" {
				t.Errorf("listener %s binds %q; the load balancer reaches the task's interface, not loopback", dig(l, "name"), addr)
			}
			if dig(l, "mode") != sp.mode {
				t.Errorf("listener on %d has mode %v, want %s (port %d)", sp.container, dig(l, "mode"), sp.mode, sp.lb)
			}
			if len(asList(dig(l, "proxy_protocol"))) == 0 {
				t.Errorf("listener on %d has no proxy_protocol; the target groups send PROXY v2 headers", sp.container)
			}
		}
		if !found {
			t.Errorf("no listener on container port %d (load balancer port %d)", sp.container, sp.lb)
		}
	}
	if got := dig(doc, "admin", "addr"); got != "127.0.0.1:8025" {
		t.Errorf("admin.addr %v; the container health check probes 127.0.0.1:8025", got)
	}
	// Secrets only as references.
	for _, r := range asList(dig(doc, "routes")) {
		for _, s := range asList(dig(r, "webhook", "secrets")) {
			if !strings.HasPrefix(scalarString(s), "env:") {
				t.Errorf("route %v has a literal webhook secret", dig(r, "name"))
			}
		}
		if pw := dig(r, "relay", "password"); pw != nil && !strings.HasPrefix(scalarString(pw), "env:") {
			t.Errorf("route %v has a literal relay password", dig(r, "name"))
		}
	}
	if len(text) >= len(mustRead(t, exampleConfigPath(t))) {
		t.Error("stripping comments removed nothing; the size check above would be meaningless")
	}
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
