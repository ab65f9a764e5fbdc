package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/dkimsign"
	"github.com/postern/postern/internal/oauthtok/entratest"
)

func runCheck(t *testing.T, env map[string]string, yaml string) (code int, stdout, stderr string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "postern.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code = Main(context.Background(), Env{Args: []string{"check-config", p}, Getenv: func(k string) string { return env[k] },
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// check-config cannot say OK for a file the gateway would refuse at start
// or that is unsafe: every problem at once, by key path, with no secret or
// URL token printed.
func TestCheckConfigReportsEverything(t *testing.T) {
	t.Parallel()
	yaml := `admin:
  token: env:ADMIN_TOKEN
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook:
      url: "http://127.0.0.1:8080/in?token=t0ps3cret"
      secrets: ["env:HOOK_SECRET", "whsec_%%%"]
      alow: ["127.0.0.1"]
`
	code, out, errs := runCheck(t, map[string]string{"ADMIN_TOKEN": "letmein"}, yaml)
	if code != 1 || strings.Contains(out, "OK") {
		t.Fatalf("exit %d, stdout %q: want 1 and no OK", code, out)
	}
	for _, want := range []string{
		"routes[0].webhook.alow: unknown key; did you mean allow?",
		`routes[0].webhook.url: "http://127.0.0.1:8080/in?…" is a loopback address`,
		"routes[0].webhook.secrets[0]: environment variable HOOK_SECRET is not set",
		"routes[0].webhook.secrets[1]: webhook secret starts with whsec_ but the rest is not standard base64",
		"admin.token: holds about",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "t0ps3cret") || strings.Contains(errs, "letmein") {
		t.Errorf("stderr prints a secret:\n%s", errs)
	}
}

// What cannot be read offline is said, not passed over in silence.
func TestCheckConfigNotesSecretsManager(t *testing.T) {
	t.Parallel()
	yaml := `backend:
  type: aws
  aws:
    bucket: mail
    queues: {inbound: "https://sqs.eu-west-1.amazonaws.com/1/in", webhook: "https://sqs.eu-west-1.amazonaws.com/1/wh", relay: "https://sqs.eu-west-1.amazonaws.com/1/rl", dsn: "https://sqs.eu-west-1.amazonaws.com/1/dsn"}
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook:
      url: "https://bot:pa55@app.example/in?token=t0ps3cret"
      secrets: ["secretsmanager:postern/app", "env:HOOK_SECRET"]
`
	code, out, errs := runCheck(t, map[string]string{"HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, yaml)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, ": OK\nnote: routes[0].webhook.secrets[0]: secretsmanager:postern/app is read at run time") {
		t.Errorf("stdout does not note the secretsmanager reference:\n%s", out)
	}
	if !strings.Contains(out, "-> webhook https://app.example/in?…") || strings.Contains(out, "pa55") || strings.Contains(out, "t0ps3cret") {
		t.Errorf("policy prints the URL's credentials or not the URL:\n%s", out)
	}
}

// The certificate files are loaded as start loads them.
func TestCheckConfigLoadsCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
	yaml := "tls:\n  cert_file: " + cert + "\n  key_file: " + filepath.Join(dir, "missing-key.pem") + "\n"
	code, out, errs := runCheck(t, nil, yaml)
	if code != 1 || strings.Contains(out, "OK") || !strings.Contains(errs, "config: tls.cert_file, tls.key_file: ") || !strings.Contains(errs, "missing-key.pem") {
		t.Fatalf("exit %d, stdout %q, stderr %q: want the key file named", code, out, errs)
	}
}

// OAuth credentials are decoded as the relays decode them.
func TestCheckConfigDecodesOAuthCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	goodPEM, _ := entratest.NewCertificate(t)
	good := filepath.Join(dir, "good.pem")
	os.WriteFile(good, goodPEM, 0o600)
	badPEM := filepath.Join(dir, "bad.pem")
	os.WriteFile(badPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	sa := filepath.Join(dir, "sa.json")
	os.WriteFile(sa, []byte(`{"type": "authorized_user", "client_email": "x@y", "private_key": "k"}`), 0o600)
	relay := func(name, typ, oauth string) string {
		return "  - name: " + name + "\n    match: {recipients: [\"*@" + name + ".example\"]}\n    relay: {type: " + typ + ", send_as: \"scanner@example.com\", oauth: " + oauth + "}\n"
	}
	yaml := "routes:\n" +
		relay("good", "graph", "{provider: entra, tenant: t, client_id: c, certificate: \"file:"+good+"\"}") +
		relay("bad", "graph", "{provider: entra, tenant: t, client_id: c, certificate: \"file:"+badPEM+"\"}") +
		relay("gm", "gmail", "{provider: google, service_account_key: \"file:"+sa+"\"}")
	code, _, errs := runCheck(t, nil, yaml)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"routes[1].relay.oauth.certificate: the PRIVATE KEY block is not a valid key",
		`routes[2].relay.oauth.service_account_key: "type" is "authorized_user", want "service_account"`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "routes[0]") {
		t.Errorf("the good certificate was refused:\n%s", errs)
	}
}

// DKIM keys are read and parsed as the signer does.
func TestCheckConfigParsesDKIMKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, err := dkimsign.GenerateKey("ed25519", 0)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.pem")
	os.WriteFile(good, pemBytes, 0o600)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	yaml := "dkim:\n  keys:\n    - {domain: example.com, selector: s1, key: \"file:" + good + "\"}\n    - {domain: example.org, selector: s1, key: \"file:" + bad + "\"}\n    - {domain: example.net, selector: s1, key: \"env:DKIM_UNSET\"}\n"
	code, _, errs := runCheck(t, nil, yaml)
	if code != 1 || !strings.Contains(errs, "dkim.keys[1].key: dkim key: PRIVATE KEY block is not a valid PKCS#8 key") ||
		!strings.Contains(errs, "dkim.keys[2].key: environment variable DKIM_UNSET is not set") || strings.Contains(errs, "dkim.keys[0]") {
		t.Fatalf("exit %d:\n%s", code, errs)
	}
}
