package config

import (
	"strings"
	"testing"
)

// awsBase is a valid aws-mode configuration; tests append routes and dsn.
const awsBase = `
hostname: mx.example.com
backend:
  type: aws
  aws:
    bucket: postern-test
    queues:
      inbound: https://sqs.us-east-1.amazonaws.com/123456789012/inbound
      webhook: https://sqs.us-east-1.amazonaws.com/123456789012/webhook
      relay: https://sqs.us-east-1.amazonaws.com/123456789012/relay
      dsn: https://sqs.us-east-1.amazonaws.com/123456789012/dsn
`

func TestParseNamesItsSourceAndAppliesOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{"POSTERN_HOSTNAME": "override.example.com"}
	c, err := Parse("s3://b/postern.yaml", []byte(awsBase), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "override.example.com" || c.Backend.AWS.Bucket != "postern-test" {
		t.Errorf("Parse gave hostname %q, bucket %q", c.Hostname, c.Backend.AWS.Bucket)
	}
	_, err = Parse("ssm:/postern/config:3", []byte("hostname: [a"), noenv)
	if err == nil || !strings.Contains(err.Error(), "config ssm:/postern/config:3:") {
		t.Fatalf("want an error naming the source, got %v", err)
	}
	_, err = Parse("s3://b/k", []byte(awsBase+"limts: {}\n"), noenv)
	if err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("want the strict decoder, got %v", err)
	}
	_, err = Parse("s3://b/k", []byte(strings.Replace(awsBase, "mx.example.com", `""`, 1)), noenv)
	if err == nil || !strings.Contains(err.Error(), "config: hostname: is empty") {
		t.Fatalf("want validation, got %v", err)
	}
}

func TestSMTPRelayOnPort25IsRefusedOnAWS(t *testing.T) {
	t.Parallel()
	routes := `
routes:
  - name: out
    match: {identities: [app]}
    relay: {type: smtp, addr: "smtp.example.com:25"}
  - name: out-named
    match: {identities: [app2]}
    relay: {type: smtp, addr: "smtp.example.com:smtp"}
  - name: ok
    match: {recipients: ["*"]}
    relay: {type: smtp, addr: "smtp.example.com:587"}
dsn:
  relay: {type: smtp, addr: "[2001:db8::1]:25", tls: implicit}
`
	_, err := Parse("test", []byte(awsBase+routes), noenv)
	if err == nil {
		t.Fatal("port 25 relays accepted on aws")
	}
	msg := err.Error()
	for _, key := range []string{"routes[0].relay.addr", "routes[1].relay.addr", "dsn.relay.addr"} {
		want := "config: " + key + ": "
		i := strings.Index(msg, want)
		if i < 0 {
			t.Errorf("no error for %s in:\n%s", key, msg)
			continue
		}
		line, _, _ := strings.Cut(msg[i:], "\n")
		if !strings.Contains(line, "Lambda blocks outbound port 25; use 587 (STARTTLS) or 465 (implicit TLS), or type: ses") {
			t.Errorf("%s: error does not say why and what to use: %s", key, line)
		}
	}
	if strings.Contains(msg, "routes[2]") {
		t.Errorf("port 587 refused: %s", msg)
	}
	// One machine may use a smarthost on 25.
	local := strings.Replace(routes, "dsn:", "identities: [{name: app, networks: [\"127.0.0.0/8\"]}]\ndsn:", 1)
	if _, err := Parse("test", []byte(local), noenv); err != nil {
		t.Fatalf("port 25 refused in local mode: %v", err)
	}
}

func TestSecretsManagerReferences(t *testing.T) {
	t.Parallel()
	route := func(secret string) string {
		return `
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook: {url: "https://app.example/in", secrets: ["` + secret + `"]}
`
	}
	for _, ok := range []string{
		"secretsmanager:postern/webhook/app",
		"secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:postern/webhook-AbCdEf",
		"secretsmanager:arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x",
	} {
		if _, err := Parse("test", []byte(awsBase+route(ok)), noenv); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for in, want := range map[string]string{
		"secretsmanager:":                                 "names no secret",
		"secretsmanager:has space":                        "is not a Secrets Manager secret name",
		"secretsmanager:arn:aws:secretsmanager:eu-west-1": "is not a Secrets Manager secret ARN",
		"secretsmanager:arn:aws:s3:::bucket":              "is not a Secrets Manager secret ARN",
		"secretsmanager:" + strings.Repeat("a", 513):      "is not a Secrets Manager secret name",
	} {
		_, err := Parse("test", []byte(awsBase+route(in)), noenv)
		if err == nil || !strings.Contains(err.Error(), "routes[0].webhook.secrets[0]: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40s: want %q naming the key, got %v", in, want, err)
		}
	}
	// Only the AWS functions can read Secrets Manager.
	_, err := Parse("test", []byte(route("secretsmanager:postern/webhook/app")), noenv)
	if err == nil || !strings.Contains(err.Error(), "routes[0].webhook.secrets[0]: secretsmanager: secrets are read at run time by the AWS functions, and backend.type is not aws") {
		t.Errorf("local mode took a secretsmanager: secret: %v", err)
	}
	relay := awsBase + `
routes:
  - name: out
    match: {recipients: ["*"]}
    relay: {type: smtp, addr: "smtp.example.com:587", username: u, password: "secretsmanager:bad name"}
`
	if _, err := Parse("test", []byte(relay), noenv); err == nil || !strings.Contains(err.Error(), "routes[0].relay.password: ") {
		t.Errorf("relay password reference not checked: %v", err)
	}
	if id, ok := SecretsManagerID("secretsmanager:postern/x"); !ok || id != "postern/x" {
		t.Errorf("SecretsManagerID = %q, %v", id, ok)
	}
	if _, err := ResolveSecret("secretsmanager:postern/x"); err == nil || !strings.Contains(err.Error(), "run time") {
		t.Errorf("ResolveSecret froze a secretsmanager: secret at start: %v", err)
	}
}
