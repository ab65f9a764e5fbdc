package standin

import (
	"path/filepath"
	"testing"
)

// IsolateAWSEnv points the AWS SDK's default chain, for the rest of t, at
// the stand-ins' credentials (S3AccessKey, S3SecretKey) and region (""
// leaves it unset), and away from this machine's AWS setup: no profile,
// shared files, session token, endpoint override or instance metadata.
// AWS_CA_BUNDLE is kept: code must work with it set. It uses t.Setenv, so
// t cannot be parallel (its subtests can).
func IsolateAWSEnv(t testing.TB, region string) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           S3AccessKey,
		"AWS_SECRET_ACCESS_KEY":       S3SecretKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  region,
		"AWS_DEFAULT_REGION":          region,
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
		"AWS_ENDPOINT_URL_SQS":        "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
}
