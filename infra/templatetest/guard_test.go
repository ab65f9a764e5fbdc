package templatetest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const requireStandins = "POSTERN_REQUIRE_STANDINS"

// cfnGuard finds the cfn-guard binary: $POSTERN_CFN_GUARD, where
// scripts/ci/install-cfn-guard.sh puts it, or PATH. Missing, the test is
// skipped, or fails when POSTERN_REQUIRE_STANDINS=1 (CI).
func cfnGuard(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("POSTERN_CFN_GUARD"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("POSTERN_CFN_GUARD=%s: %v", p, err)
		}
		return p
	}
	if p := filepath.Join(repoRoot(t), ".ci", "cache", "cfn-guard", "cfn-guard"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("cfn-guard"); err == nil {
		return p
	}
	msg := "cfn-guard not found (POSTERN_CFN_GUARD, .ci/cache/cfn-guard/cfn-guard or PATH); install it with scripts/ci/install-cfn-guard.sh"
	if os.Getenv(requireStandins) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// guard runs cfn-guard validate over one template with infra/guard/.
func guard(t *testing.T, bin, template string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, "validate", "--data", template, "--rules", filepath.Join(repoRoot(t), "infra", "guard"), "--show-summary", "fail")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCfnGuard(t *testing.T) {
	t.Parallel()
	bin := cfnGuard(t)
	root := repoRoot(t)
	out, err := guard(t, bin, filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatalf("cfn-guard rejects template.yaml: %v\n%s", err, out)
	}
	if strings.Contains(out, "FAIL") {
		t.Fatalf("cfn-guard reports failures:\n%s", out)
	}

	// Each rule set must bite: break one property per rule and expect that
	// rule to fail.
	text := mustRead(t, filepath.Join(root, "template.yaml"))
	for _, m := range []struct {
		rule, old, new string
	}{
		{"elb_proxy_protocol", `{Key: proxy_protocol_v2.enabled, Value: "true"}`, `{Key: proxy_protocol_v2.enabled, Value: "false"}`},
		{"ecs_container_hardening", "ReadonlyRootFilesystem: true", "ReadonlyRootFilesystem: false"},
		{"ecs_container_hardening", "ReadonlyRootFilesystem: true\n", "ReadonlyRootFilesystem: true\n          Privileged: true\n"},
		{"iam_statements", "Action: [\"s3:GetObject\"]\n                Resource: [!Sub \"${Bucket.Arn}/m/*\"]", "Action: [\"s3:*\"]\n                Resource: [!Sub \"${Bucket.Arn}/m/*\"]"},
		{"iam_conditional_statements", `Action: ["secretsmanager:GetSecretValue"]`, `Action: ["secretsmanager:*"]`},
		{"iam_conditional_statements", `Action: ["kms:Decrypt"]`, `Action: ["kms:*"]`},
		{"iam_statements", `Resource: [!GetAtt DSNQueue.Arn]`, `Resource: ["*"]`},
		{"sqs_redrive", "maxReceiveCount: 20}", "maxReceiveCount: 0}"},
		{"s3_public_access_blocked", "RestrictPublicBuckets: true", "RestrictPublicBuckets: false"},
		{"s3_lifecycle", "AbortIncompleteMultipartUpload: {DaysAfterInitiation: 1}", "AbortIncompleteMultipartUpload: {DaysAfterInitiation: 7}"},
		{"lambda_sqs_partial_batch", "FunctionResponseTypes: [ReportBatchItemFailures]", "FunctionResponseTypes: []"},
		{"lambda_runtime", "Architectures: [arm64]", "Architectures: [x86_64]"},
		{"parameters_no_plaintext_secrets", "  MailHostname:\n", "  SmtpPassword: {Type: String}\n  MailHostname:\n"},
		{"sqs_retention", "      MessageRetentionPeriod: 1209600\n      # 500", "      MessageRetentionPeriod: 345600\n      # 500"},
		{"parameters_no_plaintext_secrets", "  SecretsKmsKeyArn:\n", "  SmtpToken: {Type: String}\n  SecretsKmsKeyArn:\n"},
		{"sns_encrypted", "      KmsMasterKeyId: !Ref AlarmTopicKey\n", ""},
	} {
		if !strings.Contains(text, m.old) {
			t.Errorf("%s: template.yaml no longer contains %q; update the mutation", m.rule, m.old)
			continue
		}
		bad := filepath.Join(t.TempDir(), "template.yaml")
		if err := os.WriteFile(bad, []byte(strings.Replace(text, m.old, m.new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := guard(t, bin, bad)
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Errorf("%s: cfn-guard accepted %q -> %q (err %v)", m.rule, m.old, m.new, err)
			continue
		}
		if !strings.Contains(out, "/"+m.rule+" ") {
			t.Errorf("%s: the mutation %q failed other rules, not this one:\n%s", m.rule, m.new, out)
		}
	}
}
