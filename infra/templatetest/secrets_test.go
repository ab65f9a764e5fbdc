package templatetest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var secretName = regexp.MustCompile(`(?i)(secret|password|passwd|token|credential|apikey|api_key)`)

// TestNoPlaintextSecretParameters: a parameter that names a secret must be
// the ARN of a Secrets Manager secret (or a list of them), used only to
// grant a role GetSecretValue; anything else must at least be NoEcho. The
// ARN of the KMS key such secrets are encrypted with is not one.
func TestNoPlaintextSecretParameters(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	for name, p := range tpl.Parameters {
		if !secretName.MatchString(name) || strings.HasSuffix(name, "KmsKeyArn") {
			continue
		}
		if p["NoEcho"] == true {
			continue
		}
		pattern := scalarString(p["AllowedPattern"])
		if !(strings.HasSuffix(name, "Arn") || strings.HasSuffix(name, "Arns")) || !strings.Contains(pattern, ":secretsmanager:") {
			t.Errorf("parameter %s looks like a secret: make it a Secrets Manager ARN (AllowedPattern with :secretsmanager:) or NoEcho", name)
			continue
		}
		if d := scalarString(p["Default"]); d != "" {
			t.Errorf("parameter %s has a default %q", name, d)
		}
	}

	r := resolveWith(t, tpl, features)
	secretArns := map[string]bool{}
	for name, v := range features {
		if secretName.MatchString(name) && !strings.HasSuffix(name, "KmsKeyArn") {
			for _, arn := range strings.Split(v, ",") {
				secretArns[arn] = true
			}
		}
	}
	// A secret ARN may appear only as an IAM Resource (permission to read
	// it at run time): no dynamic reference, no ECS secret, no environment.
	var walk func(where string, key string, v any)
	walk = func(where, key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(where+"."+k, k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", where, i), key, e)
			}
		case string:
			if strings.Contains(x, "{{resolve:secretsmanager:") {
				t.Errorf("%s: %q resolves a secret into the template; functions read secrets at run time", where, x)
			}
			for arn := range secretArns {
				if strings.Contains(x, arn) && !(key == "Resource" && x == arn) {
					t.Errorf("%s: secret ARN used as %q; only roles may name it", where, x)
				}
			}
		}
	}
	for id, res := range r.Resources {
		walk(id, "", res.Properties)
	}
	if len(secretArns) < 3 {
		t.Fatalf("the features parameter set names %d secret ARNs, want webhook (2) and relay ones", len(secretArns))
	}
}

// TestNoSecretsInEnvironment: nothing secret in any process's
// environment, neither written out (webhook keys look like whsec_...,
// bcrypt hashes like $2a$...) nor resolved from Secrets Manager at deploy
// time, nor injected as ECS secrets.
func TestNoSecretsInEnvironment(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	literal := regexp.MustCompile(`whsec_|\$2[aby]\$|-----BEGIN|AKIA[0-9A-Z]{16}`)
	for _, ps := range paramSets {
		r := resolveWith(t, tpl, ps.values)
		check := func(where string, env map[string]string) {
			for k, v := range env {
				if literal.MatchString(v) {
					t.Errorf("%s %s: %s holds a literal secret", ps.name, where, k)
				}
				if secretName.MatchString(k) || strings.Contains(v, "{{resolve:") {
					t.Errorf("%s %s: %s = %q; secrets are read at run time, never passed in the environment", ps.name, where, k, v)
				}
			}
		}
		for _, s := range stages {
			check(s.function, functionEnv(r.Resources[s.function]))
		}
		c := gatewayContainer(t, r)
		check("gateway container", containerEnv(c))
		if s := c["Secrets"]; s != nil {
			t.Errorf("%s: gateway container gets ECS secrets %v; it uses none", ps.name, s)
		}
	}
}

// functionEnv returns a function's environment (Globals merged).
func functionEnv(res Resource) map[string]string {
	env := map[string]string{}
	for k, v := range asMap(dig(res.Properties, "Environment", "Variables")) {
		env[k] = scalarString(v)
	}
	return env
}
