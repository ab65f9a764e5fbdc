package templatetest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var secretName = regexp.MustCompile(`(?i)(secret|password|passwd|token|credential|apikey|api_key)`)

// TestNoPlaintextSecretParameters: a parameter that names a secret must be
// the ARN of a Secrets Manager secret, used only through a dynamic
// reference or an ECS secret; anything else must at least be NoEcho.
func TestNoPlaintextSecretParameters(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	for name, p := range tpl.Parameters {
		if !secretName.MatchString(name) {
			continue
		}
		if p["NoEcho"] == true {
			continue
		}
		pattern := scalarString(p["AllowedPattern"])
		if !strings.HasSuffix(name, "Arn") || !strings.Contains(pattern, ":secretsmanager:") {
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
		if secretName.MatchString(name) {
			secretArns[v] = true
		}
	}
	// Every place a secret ARN appears must be a dynamic reference, an ECS
	// secret's ValueFrom, or an IAM Resource (permission to read it).
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
			for arn := range secretArns {
				if !strings.Contains(x, arn) {
					continue
				}
				switch {
				case x == "{{resolve:secretsmanager:"+arn+"}}":
				case key == "ValueFrom" && x == arn:
				case key == "Resource" && x == arn:
				default:
					t.Errorf("%s: secret ARN used as %q; use {{resolve:secretsmanager:...}} or an ECS secret", where, x)
				}
			}
		}
	}
	for id, res := range r.Resources {
		walk(id, "", res.Properties)
	}
	if len(secretArns) == 0 {
		t.Fatal("the features parameter set names no secret ARNs, so nothing was checked")
	}
}

// TestNoLiteralSecretsInEnvironment: no environment value in the template
// is a secret written out (webhook keys look like whsec_..., bcrypt hashes
// like $2a$...).
func TestNoLiteralSecretsInEnvironment(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	literal := regexp.MustCompile(`whsec_|\$2[aby]\$|-----BEGIN|AKIA[0-9A-Z]{16}`)
	r := resolveWith(t, tpl, features)
	check := func(where string, env map[string]string) {
		for k, v := range env {
			if literal.MatchString(v) {
				t.Errorf("%s: %s holds a literal secret", where, k)
			}
			if secretName.MatchString(k) && !strings.HasPrefix(v, "{{resolve:secretsmanager:") {
				t.Errorf("%s: %s = %q is not a Secrets Manager reference", where, k, v)
			}
		}
	}
	for _, s := range stages {
		check(s.function, functionEnv(r.Resources[s.function]))
	}
	c := gatewayContainer(t, r)
	check("gateway container", containerEnv(c))
	for _, s := range asList(c["Secrets"]) {
		if !strings.Contains(scalarString(dig(s, "ValueFrom")), ":secretsmanager:") {
			t.Errorf("gateway secret %v does not come from Secrets Manager", s)
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
