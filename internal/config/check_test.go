package config

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// whsecKey decodes as webhook.ParseSecret does, for tests here (config
// does not import the webhook stage).
func whsecKey(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return []byte(s), nil
	}
	k, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, errors.New("webhook secret starts with whsec_ but the rest is not standard base64")
	}
	return k, nil
}

func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func mustContainLines(t *testing.T, err error, want ...string) {
	t.Helper()
	got := lines(err)
	for _, w := range want {
		found := false
		for _, l := range got {
			if strings.Contains(l, w) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no line contains %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

// Unknown keys and wrong values are named by key path, all at once, with
// no Go type names.
func TestDecodeErrorsNameKeyPaths(t *testing.T) {
	t.Parallel()
	yaml := `hostnme: mx.example
limits:
  max_recipients: many
  data_timeout: 10 minutes
routes:
  - name: a
    match: {recipients: ["*"]}
    directory: {path: x}
  - name: b
    match: {recipients: ["*"]}
    directory: {path: y}
  - name: c
    match: {recipients: ["*"]}
    webhook:
      url: https://app.example/in
      secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
      alow: ["10.0.0.0/8"]
      timeout: [30s]
identities:
  - name: x
    networks: 10.0.0.0/8
`
	_, err := Load(write(t, yaml), noenv)
	mustContainLines(t, err,
		"hostnme: unknown key; did you mean hostname?",
		"limits.max_recipients: want a whole number, got \"many\"",
		"limits.data_timeout: \"10 minutes\" is not a duration",
		"routes[2].webhook.alow: unknown key; did you mean allow?",
		"routes[2].webhook.timeout: want a duration",
		"identities[0].networks: want a list",
	)
	if s := err.Error(); strings.Contains(s, "config.") || strings.Contains(s, "int") && strings.Contains(s, "unmarshal") || strings.Contains(s, "[]string") {
		t.Errorf("error names Go types:\n%s", s)
	}
	for _, l := range lines(err) {
		if !strings.HasPrefix(l, "config ") {
			t.Errorf("line %q does not start with the source", l)
		}
	}
	// A value in the wrong place is described, not printed: it may be a
	// secret.
	_, err = Load(write(t, "routes:\n  - name: a\n    match: {recipients: [\"*\"]}\n    webhook: \"https://app.example/?token=t0ps3cret\"\n  - name: b\n    match: {recipients: [\"*\"]}\n    webhook: {url: \"https://app.example/\", secrets: \"whsec_s3cr3tk3y\"}\n"), noenv)
	mustContainLines(t, err, "routes[0].webhook: want a section of key: value lines, got a single value", "routes[1].webhook.secrets: want a list")
	if strings.Contains(err.Error(), "t0ps3cret") || strings.Contains(err.Error(), "s3cr3tk3y") {
		t.Errorf("a misplaced value is printed:\n%v", err)
	}
	// Far from any key: the keys of the section are listed.
	_, err = Load(write(t, "admin:\n  zzzzzz: 1\n"), noenv)
	mustContainLines(t, err, "admin.zzzzzz: unknown key; the keys here are addr,")
	// A merge key and an alias are followed.
	_, err = Load(write(t, "x-base: &base\n  max_recipients: 5\nlimits:\n  <<: *base\n"), noenv)
	mustContainLines(t, err, "x-base: unknown key")
	if _, err := Load(write(t, "limits: &l\n  max_recipients: 5\n"), noenv); err != nil {
		t.Errorf("anchor: %v", err)
	}
}

func hashCost(t *testing.T, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// Start refuses a weak bcrypt cost, saying how to fix it; a malformed
// hash (an identity that could never log in) is refused by Validate.
func TestBcryptHashes(t *testing.T) {
	t.Parallel()
	id := func(h string) string {
		return "identities:\n  - name: erp\n    password_hash: \"" + h + "\"\n"
	}
	_, err := Load(write(t, id(hashCost(t, bcrypt.MinCost))), noenv)
	mustContainLines(t, err, "identities[0].password_hash: bcrypt cost 4 is under 10", "gateway hash-password")
	if _, err := Load(write(t, id(hashCost(t, 10))), noenv); err != nil {
		t.Errorf("cost 10: %v", err)
	}
	good := hashCost(t, 10)
	for _, h := range []string{good[:40], good + "x", strings.Replace(good, "$10$", "$1x$", 1), "$2a$10$" + strings.Repeat("!", 53), "plain"} {
		_, err := Load(write(t, id(h)), noenv)
		mustContainLines(t, err, "identities[0].password_hash: is not a")
	}
	if err := checkBcryptHash("$2y$12$f18FT56bN3TeYAFiTU/NpuQlmUidPsRVZS6PkdH2qvW0BK6N3O66O"); err != nil {
		t.Errorf("$2y$ hash: %v", err)
	}
}

// check-config resolves and decodes every secret, measures the ones that
// sign or guard, notes the ones it cannot read, and says it all at once,
// naming keys and never values.
func TestCheckSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	strongFile := filepath.Join(dir, "strong")
	os.WriteFile(strongFile, []byte("whsec_"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123"))+"\n"), 0o600)
	emptyFile := filepath.Join(dir, "empty")
	os.WriteFile(emptyFile, nil, 0o600)
	yaml := `admin:
  token: "hunter2"
routes:
  - name: app
    match: {recipients: ["*"]}
    webhook:
      url: https://app.example/in
      secrets:
        - env:CHECK_UNSET
        - file:` + filepath.Join(dir, "missing") + `
        - file:` + emptyFile + `
        - "whsec_not*base64"
        - "whsec_` + base64.StdEncoding.EncodeToString([]byte("short-key")) + `"
        - "x"
        - file:` + strongFile + `
        - env:CHECK_SET
  - name: mx
    match: {recipients: ["*@mx.example"]}
    relay: {type: smtp, addr: "smtp.example:587", username: u, password: "env:CHECK_RELAY_UNSET"}
dsn:
  relay: {type: smtp, addr: "smtp.example:587", username: u, password: "secretsmanager:postern/dsn"}
`
	getenv := func(k string) string {
		if k == "CHECK_SET" {
			return "0123456789abcdef0123456789abcdef"
		}
		return ""
	}
	cfg, notes, err := Check(write(t, yaml), getenv, SecretDecoders{WebhookKey: whsecKey})
	if cfg == nil {
		t.Fatal("no configuration returned")
	}
	mustContainLines(t, err,
		"config: admin.token: holds about",
		"routes[0].webhook.secrets[0]: environment variable CHECK_UNSET is not set",
		"routes[0].webhook.secrets[1]: cannot read secret file",
		"routes[0].webhook.secrets[2]: secret file "+emptyFile+" is empty",
		"routes[0].webhook.secrets[3]: webhook secret starts with whsec_ but the rest is not standard base64",
		"routes[0].webhook.secrets[4]: holds about 9 bytes of entropy, under 16",
		"routes[0].webhook.secrets[5]: holds about 0 bytes",
		"routes[1].relay.password: environment variable CHECK_RELAY_UNSET is not set",
		// Validate's own findings come in the same report.
		"dsn.relay.password: secretsmanager: secrets are read at run time",
	)
	for _, l := range lines(err) {
		if strings.Contains(l, "secrets[6]") || strings.Contains(l, "secrets[7]") {
			t.Errorf("a strong secret was refused: %s", l)
		}
		if strings.Contains(l, "hunter2") || strings.Contains(l, "short-key") || strings.Contains(l, "0123456789abcdef") {
			t.Errorf("a secret's value is in %q", l)
		}
	}
	if len(notes) != 0 {
		t.Errorf("notes = %q, want none: off AWS a secretsmanager: reference is an error", notes)
	}
	// On AWS it is noted as not checked, never passed over.
	aws := `backend:
  type: aws
  aws:
    bucket: mail
    queues: {inbound: "https://sqs.example/1/in", webhook: "https://sqs.example/1/wh", relay: "https://sqs.example/1/rl", dsn: "https://sqs.example/1/dsn"}
dsn:
  relay: {type: smtp, addr: "smtp.example:587", username: u, password: "secretsmanager:postern/dsn"}
`
	_, notes, err = Check(write(t, aws), noenv, SecretDecoders{WebhookKey: whsecKey})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "dsn.relay.password: secretsmanager:postern/dsn is read at run time") {
		t.Errorf("notes = %q, want the secretsmanager reference noted", notes)
	}
}

// The measure: random bytes count as they are, text by its length and
// character classes.
func TestSecretBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s      string
		strong bool
	}{
		{"x", false},
		{"hunter2", false},
		{"test-secret", false},
		{strings.Repeat("a", 64), false},               // one run
		{"0123456789abcdef0123456789abcde", false},     // 31 hex characters: text, 31 x log2(36)
		{"0123456789abcdef0123456789abcdef", true},     // openssl rand -hex 16
		{"0123456789abcdef0123456789abcd", false},      // 15 bytes of hex
		{"550e8400-e29b-41d4-a716-446655440000", true}, // a UUID
		{"q7Lw2nXo9VbR4tYk8sJd3F", true},               // 22 base62 characters, 131 bits
		{"q7Lw2nXo9VbR4tYk", false},                    // openssl rand -base64 12
		{"correct horse battery staple", true},         // 28 x log2(59)
	} {
		if got := secretBytes(tc.s) >= MinSecretBytes; got != tc.strong {
			t.Errorf("secretBytes(%q) = %.1f: strong=%v, want %v", tc.s, secretBytes(tc.s), got, tc.strong)
		}
	}
}

// allow_private passes, with a note that says what it opens.
func TestAllowPrivateNoted(t *testing.T) {
	t.Parallel()
	yaml := "routes:\n  - name: app\n    match: {recipients: [\"*\"]}\n    webhook: {url: \"http://127.0.0.1:9/\", secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"], allow_private: true}\n"
	_, notes, err := Check(write(t, yaml), noenv, SecretDecoders{WebhookKey: whsecKey})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "routes[0].webhook.allow_private: true lets this route reach every loopback, private and shared address") {
		t.Errorf("notes = %q", notes)
	}
}

// A webhook URL the egress rules refuse fails validation instead of
// retrying for max_age; webhook.allow and allow_private open it.
func TestWebhookURLAgainstEgressRules(t *testing.T) {
	t.Parallel()
	route := func(webhook string) string {
		return "routes:\n  - name: app\n    match: {recipients: [\"*\"]}\n    webhook: {secrets: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"], " + webhook + "}\n"
	}
	for _, tc := range []struct {
		webhook, want string // want "" for valid
	}{
		{`url: "http://127.0.0.1:8080/in?token=t0ps3cret"`, `routes[0].webhook.url: "http://127.0.0.1:8080/in?…" is a loopback address, which the egress rules refuse, so every delivery would fail until max_age; add "127.0.0.1" to routes[0].webhook.allow`},
		{`url: "http://127.0.0.1:8080/in", allow: ["127.0.0.1"]`, ""},
		{`url: "http://127.0.0.1:8080/in", allow_private: true`, ""},
		{`url: "http://[::ffff:10.1.2.3]/in", allow: ["10.0.0.0/8"]`, ""},
		{`url: "http://10.1.2.3/in", allow: ["192.168.0.0/16"]`, "is a private address"},
		{`url: "http://198.18.0.7/in", allow_private: true`, "is a benchmarking address"},
		{`url: "http://198.18.0.7/in", allow: ["198.18.0.0/15"]`, ""},
		{`url: "http://169.254.169.254/latest", allow: ["169.254.0.0/16"]`, "is a cloud metadata address, which is never reached"},
		{`url: "http://localhost:9000/in", allow: ["127.0.0.1"]`, "resolves to the loopback address ::1"},
		{`url: "http://localhost:9000/in", allow: ["localhost"]`, ""},
		{`url: "https://app.example/in", failure_url: "http://192.168.1.9/failed"`, "routes[0].webhook.failure_url: \"http://192.168.1.9/failed\" is a private address"},
		{`url: "https://app.example/in", allow: ["10.0.0.0/33", "bad host"]`, "routes[0].webhook.allow[0]: \"10.0.0.0/33\" is neither"},
		{`url: "https://app.example/in", allow: ["10.0.0.1/8"]`, "routes[0].webhook.allow[0]: \"10.0.0.1/8\" has host bits set"},
		{`url: "https://app.example/in", allow: ["10.0.0.0/8", "0.0.0.0/0"]`, "routes[0].webhook.allow[1]: \"0.0.0.0/0\" is wider than any private range"},
		{`url: "https://app.example/in", allow: ["::/0"]`, "routes[0].webhook.allow[0]: \"::/0\" is wider"},
		{`url: "https://app.example/in", allow: ["fc00::/7", "10.0.0.0/8"]`, ""},
	} {
		_, err := Load(write(t, route(tc.webhook)), noenv)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.webhook, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want it to contain %q", tc.webhook, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "t0ps3cret") {
			t.Errorf("error prints the URL's token: %v", err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://user:pa55@app.example:8443/in/v1?token=abc#frag": "https://app.example:8443/in/v1?…",
		"https://app.example/in":                                  "https://app.example/in",
		"http://app.example/in?":                                  "http://app.example/in?…",
		"https://tok3n@app.example/":                              "https://app.example/",
		"http://[::1]:80/%zz?token=abc":                           "http://(unreadable URL)",
		"ftp://x":                                                 "ftp://x",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// check-config's policy and every validation message print URLs without
// credentials or query strings.
func TestURLsPrintedWithoutCredentials(t *testing.T) {
	t.Parallel()
	yaml := `routes:
  - name: app
    match: {recipients: ["*"]}
    webhook: {url: "https://bot:pa55w0rd@app.example/in?token=t0ps3cret", secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], allow: ["10.9.0.0/16", "app.internal"]}
  - name: bad
    match: {recipients: ["*"]}
    webhook: {url: "gopher://bot:pa55w0rd@app.example/in?token=t0ps3cret", failure_url: "ftp://bot:pa55w0rd@x/?token=t0ps3cret", secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}
`
	cfg, _, err := Check(write(t, yaml), noenv, SecretDecoders{WebhookKey: whsecKey})
	if err == nil || strings.Contains(err.Error(), "pa55w0rd") || strings.Contains(err.Error(), "t0ps3cret") {
		t.Errorf("errors print credentials, or no error: %v", err)
	}
	var b strings.Builder
	cfg.DescribePolicy(&b)
	out := b.String()
	if strings.Contains(out, "pa55w0rd") || strings.Contains(out, "t0ps3cret") || strings.Contains(out, "bot") {
		t.Errorf("policy prints credentials:\n%s", out)
	}
	if !strings.Contains(out, "-> webhook https://app.example/in?… (may reach public addresses and 10.9.0.0/16, app.internal)") {
		t.Errorf("policy does not show the redacted URL and its allow list:\n%s", out)
	}
}

// Every bad environment override is reported, not only the first.
func TestEnvOverrideErrorsAllReported(t *testing.T) {
	t.Parallel()
	env := map[string]string{"POSTERN_S3_PATH_STYLE": "maybe", "POSTERN_MAX_MESSAGE_BYTES": "lots"}
	_, err := Load("", func(k string) string { return env[k] })
	mustContainLines(t, err, "POSTERN_S3_PATH_STYLE (overrides backend.aws.s3_path_style): want true or false",
		"POSTERN_MAX_MESSAGE_BYTES (overrides limits.max_message_bytes): want a whole number of bytes")
}

// A password hash may be read from the environment or a file on one
// machine: check-config and the gateway read it there and hold it to the
// rules of a hash in the file, naming the key and never the value; on AWS,
// where no process reads either, the file is refused.
func TestPasswordHashFromEnvOrFile(t *testing.T) {
	t.Parallel()
	good, weak := hashCost(t, 10), hashCost(t, bcrypt.MinCost)
	dir := t.TempDir()
	goodFile := filepath.Join(dir, "erp.hash")
	os.WriteFile(goodFile, []byte(good+"\n"), 0o600)
	yaml := `identities:
  - name: env-good
    password_hash: "env:HASH_GOOD"
  - name: file-good
    password_hash: "file:` + goodFile + `"
  - name: unset
    password_hash: "env:HASH_UNSET"
  - name: not-a-hash
    password_hash: "env:HASH_PLAIN"
  - name: weak
    password_hash: "env:HASH_WEAK"
`
	getenv := func(k string) string {
		return map[string]string{"HASH_GOOD": good, "HASH_PLAIN": "hunter2hunter2", "HASH_WEAK": weak}[k]
	}
	path := write(t, yaml)
	cfg, err := Load(path, noenv)
	if err != nil {
		t.Fatalf("load (the references are read where used): %v", err)
	}
	_, _, err = Check(path, getenv, SecretDecoders{WebhookKey: whsecKey})
	mustContainLines(t, err,
		"identities[2].password_hash: environment variable HASH_UNSET is not set",
		"identities[3].password_hash: env:HASH_PLAIN: is not a bcrypt hash",
		"identities[4].password_hash: env:HASH_WEAK: bcrypt cost 4 is under 10",
	)
	if n := len(lines(err)); n != 3 {
		t.Errorf("%d problems, want 3:\n%v", n, err)
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), weak) {
		t.Errorf("an error shows the value: %v", err)
	}
	for i, want := range []string{good, good} {
		if h, err := cfg.Identities[i].ResolvedPasswordHash(getenv); err != nil || h != want {
			t.Errorf("identity %s: %q, %v; want the hash", cfg.Identities[i].Name, h, err)
		}
	}
	literal := Identity{PasswordHash: good}
	if h, err := literal.ResolvedPasswordHash(noenv); err != nil || h != good {
		t.Errorf("a hash in the file: %q, %v", h, err)
	}

	aws := "backend: {type: aws, aws: {bucket: b, queues: {inbound: https://sqs.invalid/0/i, webhook: https://sqs.invalid/0/w, relay: https://sqs.invalid/0/r, dsn: https://sqs.invalid/0/d}}}\n" + yaml
	_, err = Load(write(t, aws), noenv)
	mustContainLines(t, err, "identities[0].password_hash: env: and file: are read by no process on AWS")
}
