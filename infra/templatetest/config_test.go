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
	"github.com/postern/postern/internal/configsrc"
)

// lambdaEnvLimit is Lambda's cap on a function's environment: keys and
// values together.
const lambdaEnvLimit = 4096

func exampleConfigPath(t testing.TB) string {
	return filepath.Join(repoRoot(t), "infra", "examples", "aws.yaml")
}

// deployedConfig is the example configuration as scripts/deploy uploads it
// to S3: the file as it is.
func deployedConfig(t testing.TB) string {
	t.Helper()
	return mustRead(t, exampleConfigPath(t))
}

var resourceRef = regexp.MustCompile(`\$\{([A-Za-z0-9]+)\}`)

// runtimeValue is what a process sees for a resolved template value:
// realistic names and URLs for the stack's resources.
func runtimeValue(v string) string {
	return resourceRef.ReplaceAllStringFunc(v, func(m string) string {
		id := m[2 : len(m)-1]
		if strings.HasSuffix(id, "Queue") || strings.HasSuffix(id, "DLQ") {
			return "https://sqs.us-east-1.amazonaws.com/123456789012/postern-" + id + "-1A2B3C4D5E6F"
		}
		return "postern-" + strings.ToLower(id) + "-1a2b3c4d5e6f"
	})
}

// secretRefs lists a configuration's secret references with the given
// prefix (env:, secretsmanager:), by the key they sit under.
func secretRefs(t testing.TB, text, prefix string) map[string][]string {
	t.Helper()
	doc, err := DecodeYAML([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string][]string{}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case string:
			if id, ok := strings.CutPrefix(x, prefix); ok {
				refs[key] = append(refs[key], id)
			}
		}
	}
	walk("", doc)
	return refs
}

type process struct {
	name  string
	stage string // "" for the gateway
	env   map[string]string
}

// processes returns the environment of every process the stack runs, as
// the process sees it.
func processes(t *testing.T, r *Resolved) []process {
	t.Helper()
	var out []process
	for _, s := range stages {
		env := map[string]string{}
		for k, v := range functionEnv(r.Resources[s.function]) {
			env[k] = runtimeValue(v)
		}
		out = append(out, process{s.function, s.name, env})
	}
	c := gatewayContainer(t, r)
	env := map[string]string{}
	for k, v := range containerEnv(c) {
		env[k] = runtimeValue(v)
	}
	return append(out, process{"gateway", "", env})
}

// TestTemplateEnvironmentLoadsConfig: every process the template defines
// gets the environment it reads and nothing it does not know; its
// POSTERN_CONFIG_URI names the object scripts/deploy uploads (or the SSM
// parameter), and the example configuration, read from there, loads as a
// valid aws-backend configuration on which each function builds its stage.
//
// Not parallel: it sets AWS_REGION with t.Setenv.
func TestTemplateEnvironmentLoadsConfig(t *testing.T) {
	tpl := loadTemplate(t)
	text := deployedConfig(t)
	known := map[string]bool{
		configsrc.EnvURI: true,
		// The Lambda adapter's in-invocation record concurrency.
		"POSTERN_RECORD_CONCURRENCY": true,
		// sam local invoke only (infra/events/env.json).
		"POSTERN_CONFIG_YAML": true,
	}
	for _, kv := range config.EnvNames() {
		known[kv[0]] = true
	}
	need := []string{configsrc.EnvURI, "POSTERN_BACKEND", "POSTERN_DATA_DIR", "POSTERN_BUCKET",
		"POSTERN_QUEUE_INBOUND", "POSTERN_QUEUE_WEBHOOK", "POSTERN_QUEUE_RELAY", "POSTERN_QUEUE_DSN"}
	// Functions dead-letter jobs that can never succeed themselves.
	needFunction := []string{"POSTERN_DLQ_INBOUND", "POSTERN_DLQ_WEBHOOK", "POSTERN_DLQ_RELAY", "POSTERN_DLQ_DSN", "POSTERN_RECORD_CONCURRENCY"}

	// Keep OpenAWS from setting AWS_REGION for the whole test binary.
	t.Setenv("AWS_REGION", "us-east-1")
	for _, set := range []struct {
		name   string
		values map[string]string
		source configsrc.Source // what the URI must name (bucket filled in below)
	}{
		{"s3", features, configsrc.Source{Key: features["ConfigObjectKey"]}},
		{"ssm-version", sseS3, configsrc.Source{Parameter: "/postern/config:" + sseS3["ConfigParameterVersion"]}},
		{"ssm-latest", defaults, configsrc.Source{Parameter: "/postern/config"}},
	} {
		r := resolveWith(t, tpl, set.values)
		for _, p := range processes(t, r) {
			t.Run(set.name+"/"+p.name, func(t *testing.T) {
				want := need
				if p.stage != "" {
					want = append(slices.Clone(need), needFunction...)
				}
				for _, k := range want {
					if p.env[k] == "" {
						t.Errorf("%s is not set", k)
					}
				}
				size := 0
				for k, v := range p.env {
					size += len(k) + len(v)
					if strings.HasPrefix(k, "POSTERN_") && !known[k] {
						t.Errorf("%s is set but nothing reads it (not a config.EnvNames override, the configuration URI or the record concurrency)", k)
					}
					if strings.Contains(v, "${") || strings.Contains(v, "{{resolve") {
						t.Errorf("%s = %q still holds a template reference", k, v)
					}
				}
				if p.stage != "" && size > lambdaEnvLimit-512 {
					t.Errorf("environment is %d bytes; Lambda allows %d in all, keep 512 spare", size, lambdaEnvLimit)
				}

				uri := p.env[configsrc.EnvURI]
				src, err := configsrc.ParseURI(uri)
				if err != nil {
					t.Fatal(err)
				}
				wantSrc := set.source
				wantSrc.URI = uri
				if wantSrc.Key != "" {
					wantSrc.Bucket = p.env["POSTERN_BUCKET"]
					if !strings.HasPrefix(wantSrc.Key, "config/") {
						t.Errorf("object key %q is not under config/, the only prefix the roles may read", wantSrc.Key)
					}
				}
				if src != wantSrc {
					t.Errorf("%s = %q names %+v, want %+v", configsrc.EnvURI, uri, src, wantSrc)
				}

				getenv := func(k string) string { return p.env[k] }
				cfg, err := config.Parse(uri, []byte(text), getenv)
				if err != nil {
					t.Fatalf("the example configuration does not load with the template's environment: %v", err)
				}
				if cfg.Backend.Type != "aws" || cfg.Backend.AWS.Queues.Inbound != p.env["POSTERN_QUEUE_INBOUND"] || cfg.Backend.AWS.Bucket != p.env["POSTERN_BUCKET"] {
					t.Errorf("backend %+v does not come from the template", cfg.Backend)
				}
				if host := set.values["MailHostname"]; host != "" && cfg.Hostname != host {
					t.Errorf("hostname %q, want MailHostname %q", cfg.Hostname, host)
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
	}
}

// TestExampleSecretsAreGranted: the secrets the example configuration
// names are readable by the role of the stage that uses them, once their
// ARNs are given as the template's parameters (a name matches the ARN
// Secrets Manager gives it: name, a dash, six characters).
func TestExampleSecretsAreGranted(t *testing.T) {
	t.Parallel()
	text := deployedConfig(t)
	if env := secretRefs(t, text, "env:"); len(env) > 0 {
		t.Errorf("the example reads secrets from the environment (%v); on AWS no secret is in any environment: write secretsmanager:<ARN or name>", env)
	}
	refs := secretRefs(t, text, "secretsmanager:")
	if len(refs["secrets"]) == 0 {
		t.Fatal("the example configuration names no secretsmanager: webhook secret; the test would prove nothing")
	}
	tpl := loadTemplate(t)
	values := params(map[string]string{
		"WebhookSecretArns": "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + refs["secrets"][0] + "-AbCdEf",
		"RelaySecretArns":   "arn:aws:secretsmanager:us-east-1:123456789012:secret:postern/relay-GhIjKl",
	})
	r := resolveWith(t, tpl, values)
	readable := func(role, id string) bool {
		lines, _ := grants(t, r.Resources[role])
		for _, l := range lines {
			arn, ok := strings.CutPrefix(l, "secretsmanager:GetSecretValue ")
			if !ok {
				continue
			}
			if arn == id {
				return true
			}
			if _, name, ok := strings.Cut(arn, ":secret:"); ok && len(name) > 7 && name[:len(name)-7] == id && name[len(name)-7] == '-' {
				return true
			}
		}
		return false
	}
	for key, roles := range map[string][]string{"secrets": {"WebhookRole"}, "password": {"RelayRole", "DSNRole"}} {
		for _, id := range refs[key] {
			for _, role := range roles {
				if !readable(role, id) {
					t.Errorf("%s: %s may not read secretsmanager:%s (the %s of the example)", role, role, id, key)
				}
			}
			if readable("ParseRole", id) || readable("GatewayTaskRole", id) {
				t.Errorf("secretsmanager:%s is readable by a stage that does not use it", id)
			}
		}
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
	// Secrets only as Secrets Manager references.
	for _, r := range asList(dig(doc, "routes")) {
		for _, s := range asList(dig(r, "webhook", "secrets")) {
			if !strings.HasPrefix(scalarString(s), "secretsmanager:") {
				t.Errorf("route %v has a webhook secret that is not a secretsmanager: reference", dig(r, "name"))
			}
		}
		if pw := dig(r, "relay", "password"); pw != nil && !strings.HasPrefix(scalarString(pw), "secretsmanager:") {
			t.Errorf("route %v has a relay password that is not a secretsmanager: reference", dig(r, "name"))
		}
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
