package templatetest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// grants flattens a role's Allow statements into "action resource" lines.
func grants(t *testing.T, role Resource) (lines []string, conditions map[string]any) {
	t.Helper()
	conditions = map[string]any{}
	for _, pol := range dig(role.Properties, "Policies").([]any) {
		for _, st := range dig(pol, "PolicyDocument", "Statement").([]any) {
			if dig(st, "Effect") != "Allow" {
				t.Errorf("statement %v is not an Allow", dig(st, "Sid"))
				continue
			}
			for _, a := range strs(dig(st, "Action")) {
				for _, r := range strs(dig(st, "Resource")) {
					line := a + " " + r
					lines = append(lines, line)
					if c := dig(st, "Condition"); c != nil {
						conditions[line] = c
					}
				}
			}
		}
	}
	return sorted(lines), conditions
}

func expand(actions []string, resources ...string) []string {
	var out []string
	for _, a := range actions {
		for _, r := range resources {
			out = append(out, a+" "+r)
		}
	}
	return out
}

var (
	logs     = []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	consume  = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}
	send     = []string{"sqs:SendMessage"}
	list     = []string{"s3:ListBucket"}
	sesSend  = []string{"ses:SendRawEmail", "ses:SendEmail"}
	objects  = "${Bucket.Arn}/m/*"
	bucket   = "${Bucket.Arn}"
	kmsRead  = []string{"kms:Decrypt"}
	kmsWrite = []string{"kms:Decrypt", "kms:GenerateDataKey"}
)

// wantGrants is every role's exact permission set under one parameter set:
// the stage's own queue, the queues it feeds, the message prefix, and
// nothing else.
func wantGrants(values map[string]string) map[string][]string {
	key := ""
	switch {
	case values["BucketEncryption"] == "SSE-S3":
	case values["KmsKeyArn"] != "":
		key = values["KmsKeyArn"]
	default:
		key = "${BucketKey.Arn}"
	}
	kms := func(actions []string) []string {
		if key == "" {
			return nil
		}
		return expand(actions, key)
	}
	var ses []string
	if ids := values["SesIdentityArns"]; ids != "" {
		res := strings.Split(ids, ",")
		if cs := values["SesConfigurationSetName"]; cs != "" {
			res = append(res, "arn:aws:ses:us-east-1:123456789012:configuration-set/"+cs)
		}
		ses = expand(sesSend, res...)
	}
	// The configuration: the object's prefix in the bucket, or the SSM
	// parameter.
	readConfig := expand([]string{"s3:GetObject"}, "${Bucket.Arn}/config/*")
	if values["ConfigSource"] != "s3" {
		name := values["ConfigParameterName"]
		if name == "" {
			name = "/postern/config"
		}
		readConfig = expand([]string{"ssm:GetParameter"}, "arn:aws:ssm:us-east-1:123456789012:parameter"+name)
	}
	// Secrets: only the stages that use them, and their key through
	// Secrets Manager when one is named.
	secretKey := func(given bool) []string {
		if k := values["SecretsKmsKeyArn"]; given && k != "" {
			return expand(kmsRead, k)
		}
		return nil
	}
	var webhookSecrets []string
	if v := values["WebhookSecretArns"]; v != "" {
		webhookSecrets = append(expand([]string{"secretsmanager:GetSecretValue"}, strings.Split(v, ",")...), secretKey(true)...)
	}
	var relaySecrets []string
	if v := values["RelaySecretArns"]; v != "" {
		relaySecrets = append(expand([]string{"secretsmanager:GetSecretValue"}, strings.Split(v, ",")...), secretKey(true)...)
	}
	join := func(parts ...[]string) []string { return sorted(slices.Concat(parts...)) }
	return map[string][]string{
		"ParseRole": join(
			expand(logs, "${ParseLogGroup.Arn}"),
			expand(consume, "${InboundQueue.Arn}"),
			expand(send, "${InboundDLQ.Arn}"),
			expand(send, "${WebhookQueue.Arn}", "${RelayQueue.Arn}", "${DSNQueue.Arn}"),
			expand([]string{"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}, objects),
			expand(list, bucket),
			readConfig,
			kms(kmsWrite)),
		"WebhookRole": join(
			expand(logs, "${WebhookLogGroup.Arn}"),
			expand(consume, "${WebhookQueue.Arn}"),
			expand(send, "${WebhookDLQ.Arn}"),
			expand(send, "${DSNQueue.Arn}"),
			expand([]string{"s3:GetObject"}, objects),
			expand(list, bucket),
			readConfig,
			webhookSecrets,
			kms(kmsRead)),
		"RelayRole": join(
			expand(logs, "${RelayLogGroup.Arn}"),
			expand(consume, "${RelayQueue.Arn}"),
			expand(send, "${RelayDLQ.Arn}"),
			expand(send, "${DSNQueue.Arn}"),
			expand([]string{"s3:GetObject", "s3:PutObject"}, objects),
			expand(list, bucket),
			readConfig,
			relaySecrets,
			kms(kmsWrite),
			ses),
		"DSNRole": join(
			expand(logs, "${DSNLogGroup.Arn}"),
			expand(consume, "${DSNQueue.Arn}"),
			expand(send, "${DSNDLQ.Arn}"),
			expand([]string{"s3:GetObject", "s3:PutObject"}, objects),
			expand(list, bucket),
			readConfig,
			relaySecrets,
			kms(kmsWrite),
			ses),
		"GatewayTaskRole": join(
			expand([]string{"s3:PutObject", "s3:AbortMultipartUpload"}, objects),
			expand([]string{"s3:GetObject"}, "${Bucket.Arn}/readyz-probe"),
			expand(list, bucket),
			expand([]string{"sqs:SendMessage", "sqs:GetQueueAttributes"}, "${InboundQueue.Arn}"),
			readConfig,
			kms(kmsWrite)),
		"GatewayExecutionRole": join(
			[]string{"ecr:GetAuthorizationToken *"},
			expand([]string{"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"},
				"arn:aws:ecr:us-east-1:123456789012:repository/*"),
			expand(logs, "${GatewayLogGroup.Arn}")),
	}
}

func TestRolesGrantExactlyWhatEachStageUses(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	for _, ps := range paramSets {
		r := resolveWith(t, tpl, ps.values)
		want := wantGrants(ps.values)
		for _, id := range tpl.OfType("AWS::IAM::Role") {
			w, ok := want[id]
			if !ok {
				t.Errorf("role %s is not in the expected table: add it with its exact grants", id)
				continue
			}
			got, conds := grants(t, r.Resources[id])
			if !slices.Equal(got, w) {
				t.Errorf("%s %s grants:\n  %s\nwant:\n  %s\nextra: %v\nmissing: %v", ps.name, id,
					strings.Join(got, "\n  "), strings.Join(w, "\n  "), minus(got, w), minus(w, got))
			}
			// KMS use is only through S3, or Secrets Manager for the
			// secrets' key.
			for line, c := range conds {
				via := "s3.us-east-1.amazonaws.com"
				if k := ps.values["SecretsKmsKeyArn"]; k != "" && strings.HasSuffix(line, " "+k) {
					via = "secretsmanager.us-east-1.amazonaws.com"
				}
				if strings.HasPrefix(line, "kms:") && dig(c, "StringEquals", "kms:ViaService") != via {
					t.Errorf("%s %s: %s not limited to kms:ViaService %s (%v)", ps.name, id, line, via, c)
				}
			}
			for line := range slices.Values(got) {
				if strings.HasPrefix(line, "kms:") && conds[line] == nil {
					t.Errorf("%s %s: %s has no kms:ViaService condition", ps.name, id, line)
				}
			}
		}
		for id := range want {
			if _, ok := r.Resources[id]; !ok {
				t.Errorf("%s: expected role %s is missing", ps.name, id)
			}
		}
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// starOnly are the actions AWS offers no resource-level permissions for.
var starOnly = []string{"ecr:GetAuthorizationToken"}

var wildcardAction = regexp.MustCompile(`^([a-z0-9-]+:)?\*$`)

// TestNoWildcards checks every policy document in the template, wherever
// it is: roles, bucket and queue policies, the key policy.
func TestNoWildcards(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, features)
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if st, ok := x["Statement"].([]any); ok {
				for i, s := range st {
					checkStatement(t, fmt.Sprintf("%s[%d]", where, i), s)
				}
				return
			}
			for k, e := range x {
				walk(where+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", where, i), e)
			}
		}
	}
	for id, res := range r.Resources {
		walk(id, res.Properties)
	}
}

func checkStatement(t *testing.T, where string, st any) {
	t.Helper()
	effect := dig(st, "Effect")
	actions, resources := strs(dig(st, "Action")), strs(dig(st, "Resource"))
	if effect == "Deny" {
		return // a deny may be as broad as it likes
	}
	if dig(st, "NotAction") != nil || dig(st, "NotResource") != nil {
		t.Errorf("%s: Allow with NotAction/NotResource", where)
	}
	principal := dig(st, "Principal")
	// A KMS key policy's root statement is AWS's default: it hands the key
	// to IAM, and a key policy's resource is always the key itself ("*").
	if dig(principal, "AWS") == "arn:aws:iam::123456789012:root" && slices.Equal(actions, []string{"kms:*"}) {
		return
	}
	if principal == "*" || dig(principal, "AWS") == "*" {
		t.Errorf("%s: Allow to any principal", where)
	}
	for _, a := range actions {
		if wildcardAction.MatchString(a) {
			t.Errorf("%s: wildcard action %q", where, a)
		}
	}
	if dig(principal, "Service") != nil {
		return // a trust policy: no resource
	}
	if len(resources) == 0 {
		t.Errorf("%s: no Resource", where)
	}
	for _, res := range resources {
		if res != "*" {
			continue
		}
		for _, a := range actions {
			if !slices.Contains(starOnly, a) {
				t.Errorf("%s: %s on Resource \"*\"; only %v may (no resource-level permissions)", where, a, starOnly)
			}
		}
	}
}

func TestRolesTrustOneService(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t)
	r := resolveWith(t, tpl, defaults)
	want := map[string]string{
		"ParseRole": "lambda.amazonaws.com", "WebhookRole": "lambda.amazonaws.com",
		"RelayRole": "lambda.amazonaws.com", "DSNRole": "lambda.amazonaws.com",
		"GatewayTaskRole": "ecs-tasks.amazonaws.com", "GatewayExecutionRole": "ecs-tasks.amazonaws.com",
	}
	for _, id := range tpl.OfType("AWS::IAM::Role") {
		p := r.Resources[id].Properties
		if p["ManagedPolicyArns"] != nil {
			t.Errorf("%s: managed policies hide what the role may do", id)
		}
		st, _ := dig(p, "AssumeRolePolicyDocument", "Statement").([]any)
		if len(st) != 1 {
			t.Errorf("%s: %d trust statements, want 1", id, len(st))
			continue
		}
		if got := dig(st[0], "Principal", "Service"); got != want[id] {
			t.Errorf("%s trusts %v, want %s", id, got, want[id])
		}
		if a := strs(dig(st[0], "Action")); !slices.Equal(a, []string{"sts:AssumeRole"}) {
			t.Errorf("%s: trust actions %v", id, a)
		}
	}
}
