package templatetest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// required are values for the parameters that have no default.
var required = map[string]string{
	"GatewayImageUri":       "123456789012.dkr.ecr.us-east-1.amazonaws.com/postern-gateway:test",
	"VpcId":                 "vpc-0123456789abcdef0",
	"LoadBalancerSubnetIds": "subnet-0aaa,subnet-0bbb",
	"TaskSubnetIds":         "subnet-0ccc,subnet-0ddd",
}

// Parameter sets the invariants are checked under: the defaults, and every
// optional feature switched on (SSE-S3 is the other encryption choice).
var (
	defaults = params(nil)
	features = params(map[string]string{
		"ConfigSource":              "s3",
		"ConfigObjectKey":           "config/postern-0123456789abcdef.yaml",
		"MailHostname":              "mx.example.com",
		"WebhookSecretArns":         webhookSecretA + "," + webhookSecretB,
		"RelaySecretArns":           "arn:aws:secretsmanager:us-east-1:123456789012:secret:postern/relay-GhIjKl,arn:aws:secretsmanager:us-east-1:123456789012:secret:postern/m365-app-StUvWx",
		"SecretsKmsKeyArn":          "arn:aws:kms:us-east-1:123456789012:key/9876fedc-12ab-34cd-56ef-1234567890ab",
		"SesIdentityArns":           "arn:aws:ses:us-east-1:123456789012:identity/example.com,arn:aws:ses:us-east-1:123456789012:identity/billing@example.com",
		"SesConfigurationSetName":   "postern",
		"BucketVersioning":          "Enabled",
		"ReservedConcurrency":       "20",
		"AlarmTopicArn":             "arn:aws:sns:us-east-1:123456789012:ops",
		"ParseBatchWindowSeconds":   "30",
		"WebhookBatchWindowSeconds": "30",
		"RelayBatchWindowSeconds":   "30",
		"DSNBatchWindowSeconds":     "30",
		"WebhookMaxConcurrency":     "250",
		"RelayRecordConcurrency":    "3",
	})
	// The other encryption choice, and the configuration in SSM at a
	// version with the stack's own alarm topic and an email subscribed.
	sseS3 = params(map[string]string{"BucketEncryption": "SSE-S3", "ConfigParameterVersion": "7", "AlarmEmail": "ops@example.com"})
	// A relay password without webhook secrets, in the default key.
	ownKey = params(map[string]string{
		"KmsKeyArn":       "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"RelaySecretArns": "arn:aws:secretsmanager:us-east-1:123456789012:secret:postern/relay-GhIjKl",
	})
)

const (
	webhookSecretA = "arn:aws:secretsmanager:us-east-1:123456789012:secret:postern/webhook-AbCdEf"
	webhookSecretB = "arn:aws:secretsmanager:us-east-1:123456789012:secret:postern/webhook-next-MnOpQr"
)

func params(extra map[string]string) map[string]string {
	p := map[string]string{}
	for k, v := range required {
		p[k] = v
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

var paramSets = []struct {
	name   string
	values map[string]string
}{
	{"defaults", defaults},
	{"features", features},
	{"sse-s3", sseS3},
	{"own-kms-key", ownKey},
}

// repoRoot is the module root (the tests run in infra/templatetest).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

func loadTemplate(t testing.TB) *Template {
	t.Helper()
	tpl, err := Load(filepath.Join(repoRoot(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func resolveWith(t testing.TB, tpl *Template, values map[string]string) *Resolved {
	t.Helper()
	r, err := tpl.Resolve(values)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dig follows a path of map keys (string) and list indexes (int).
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// strs returns a string or a list of strings as a list; anything else
// (an unresolved intrinsic) comes back as its printed form so a test
// comparing strings fails visibly.
func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, scalarString(e))
		}
		return out
	case nil:
		return nil
	}
	return []string{scalarString(v)}
}

// num reads an integer property written as a number or a string.
func num(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case string:
		return strconv.Atoi(x)
	}
	return 0, errors.New("not a number: " + scalarString(v))
}

func mustNum(t testing.TB, what string, v any) int {
	t.Helper()
	n, err := num(v)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return n
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
