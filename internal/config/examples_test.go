package config_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/postern/postern/internal/cli"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/secrets"
)

// mailboxExample is one of the infra/examples files that README.md's
// "Scanners and printers after Microsoft switches off Basic auth" walks
// through, with what the README says about it.
type mailboxExample struct {
	file string
	// env is what the file's header exports, with placeholder values of
	// the right shape.
	env func(t *testing.T) map[string]string
	// relays are the relay types the README shows in this file, route by
	// route, and scopes the token scope each one asks for (the README
	// tells the administrator to grant these).
	relays, scopes []string
	// smAWS is the Secrets Manager name DEPLOY.md gives each env: secret.
	smAWS map[string]string
	// hashes are the env: variables that hold password hashes, which
	// DEPLOY.md says to paste into the file itself on AWS.
	hashes []string
}

// exampleHash is a bcrypt hash of cost MinBcryptCost for the examples'
// password_hash variables (of a password nobody keeps).
var exampleHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), config.MinBcryptCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

var mailboxExamples = []mailboxExample{
	{
		file: "m365.yaml",
		env: func(*testing.T) map[string]string {
			return map[string]string{"POSTERN_M365_CLIENT_SECRET": "Xy7~placeholder.client.secret",
				"POSTERN_MFP2_PASSWORD_HASH": exampleHash(), "POSTERN_ERP_PASSWORD_HASH": exampleHash()}
		},
		relays: []string{"graph", "smtp"},
		scopes: []string{config.GraphScope, config.OutlookScope},
		smAWS:  map[string]string{"POSTERN_M365_CLIENT_SECRET": "postern/m365-client-secret"},
		hashes: []string{"POSTERN_MFP2_PASSWORD_HASH", "POSTERN_ERP_PASSWORD_HASH"},
	},
	{
		file: "google.yaml",
		env: func(t *testing.T) map[string]string {
			return map[string]string{"POSTERN_GOOGLE_SA_KEY": serviceAccountKey(t),
				"POSTERN_SCANNERS_PASSWORD_HASH": exampleHash(), "POSTERN_ALARM_PASSWORD_HASH": exampleHash()}
		},
		relays: []string{"gmail", "smtp"},
		scopes: []string{config.GmailSendScope, config.GoogleMailScope},
		smAWS:  map[string]string{"POSTERN_GOOGLE_SA_KEY": "postern/google-service-account"},
		hashes: []string{"POSTERN_SCANNERS_PASSWORD_HASH", "POSTERN_ALARM_PASSWORD_HASH"},
	},
}

func examplePath(name string) string { return filepath.Join("..", "..", "infra", "examples", name) }

// TestMailboxExamplesLoadAndBuild runs `gateway check-config` on each
// example with the environment its header names (and without it, which
// must fail naming the variable: the secrets really come from there),
// loads it as `gateway -config` does, and builds every relay in it
// (routes and dsn.relay) as the relay and dsn stages do, so a key, a
// secret reference or a scope the docs rely on cannot drift away from the
// code.
func TestMailboxExamplesLoadAndBuild(t *testing.T) {
	for _, ex := range mailboxExamples {
		t.Run(ex.file, func(t *testing.T) {
			path := examplePath(ex.file)
			env := ex.env(t)
			for k := range env {
				if !strings.Contains(header(t, path), k+"=") {
					t.Errorf("the header does not say to set %s", k)
				}
			}
			if !strings.Contains(header(t, path), "go run ./gateway check-config infra/examples/"+ex.file) {
				t.Errorf("the header does not say how to validate %s", ex.file)
			}
			if code, out, errs := checkConfig(path, env); code != 0 || !strings.HasPrefix(out, path+": OK\n") {
				t.Fatalf("gateway check-config %s: exit %d\n%s%s", ex.file, code, out, errs)
			}
			for k := range env {
				if code, _, errs := checkConfig(path, nil); code == 0 || !strings.Contains(errs, k+" is not set") {
					t.Errorf("gateway check-config %s without %s: exit %d, %s", ex.file, k, code, errs)
				}
				t.Setenv(k, "")
			}
			bare, err := config.Load(path, os.Getenv)
			if err != nil {
				t.Fatalf("load without its environment (only building should need it): %v", err)
			}
			_, err = relayfn.NewTransport(context.Background(), bare, "routes[0].relay", bare.Routes[0].Relay, nil)
			if err == nil || !strings.Contains(err.Error(), "is not set") {
				t.Fatalf("built a relay without its secret's variable; err = %v", err)
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			cfg, err := config.Load(path, os.Getenv)
			if err != nil {
				t.Fatal(err)
			}

			// The device side: a TLS 1.0 listener and password identities.
			legacy := false
			for _, l := range cfg.Listeners {
				legacy = legacy || l.TLSMinVersion == "1.0"
			}
			if !legacy {
				t.Error("no listener with tls_min_version 1.0 for the legacy devices")
			}
			for _, id := range cfg.Identities {
				if id.PasswordHash == "" || id.Owner == "" {
					t.Errorf("identity %s: want a password (AUTH LOGIN) and an owner for failure notices", id.Name)
				}
			}
			if !cfg.DSN.OwnerOnly {
				t.Error("dsn.owner_only is off; the README says notices go to the owner only")
			}

			// The relays: types and token scopes as the README describes them.
			if len(cfg.Routes) != len(ex.relays) {
				t.Fatalf("%d routes, the README shows %d", len(cfg.Routes), len(ex.relays))
			}
			for i, r := range cfg.Routes {
				if r.Relay == nil || r.Relay.Type != ex.relays[i] {
					t.Errorf("route %s: relay %+v, want type %s", r.Name, r.Relay, ex.relays[i])
					continue
				}
				if r.Relay.OAuth == nil || r.Relay.OAuth.Scope != "" {
					t.Errorf("route %s: want an oauth block with the default scope", r.Name)
				} else if got := r.Relay.DefaultScope(); got != ex.scopes[i] {
					t.Errorf("route %s: token scope %s, the README says %s", r.Name, got, ex.scopes[i])
				}
				if r.Relay.Mailbox() == "" {
					t.Errorf("route %s: no mailbox to send as", r.Name)
				}
			}
			relays := map[string]*config.Relay{"dsn.relay": &cfg.DSN.Relay}
			for i := range cfg.Routes {
				relays["routes "+cfg.Routes[i].Name+" relay"] = cfg.Routes[i].Relay
			}
			for key, r := range relays {
				for _, ref := range r.SecretRefs() {
					if ref == "" {
						continue
					}
					if _, err := config.ResolveSecret(ref); err != nil {
						t.Errorf("%s: secret %s: %v", key, ref, err)
					}
				}
				if _, err := relayfn.NewTransport(context.Background(), cfg, key, r, nil); err != nil {
					t.Errorf("%s: %v", key, err)
				}
			}
		})
	}
}

// TestMailboxExamplesOnAWS follows infra/DEPLOY.md: the identities, routes
// and dsn of each example moved into a copy of infra/examples/aws.yaml,
// each env: secret written as the secretsmanager: name DEPLOY.md gives,
// checked as scripts/deploy checks it (the aws backend from the
// environment, and no env: or file: left), and every relay built as the
// Lambda functions build it, reading its secret through Secrets Manager.
func TestMailboxExamplesOnAWS(t *testing.T) {
	t.Parallel()
	aws := readYAML(t, examplePath("aws.yaml"))
	deployEnv := map[string]string{
		"POSTERN_BACKEND": "aws", "POSTERN_BUCKET": "check-only",
		"POSTERN_QUEUE_INBOUND": "https://sqs.invalid/0/inbound", "POSTERN_QUEUE_WEBHOOK": "https://sqs.invalid/0/webhook",
		"POSTERN_QUEUE_RELAY": "https://sqs.invalid/0/relay", "POSTERN_QUEUE_DSN": "https://sqs.invalid/0/dsn",
	}
	deploy, err := os.ReadFile(filepath.Join("..", "..", "infra", "DEPLOY.md"))
	if err != nil {
		t.Fatal(err)
	}
	// scripts/deploy's test for secrets no process on AWS has.
	localRef := regexp.MustCompile(`(^|[[:space:]"'\[,:])(env|file):[A-Za-z0-9_/.]`)
	for _, ex := range mailboxExamples {
		t.Run(ex.file, func(t *testing.T) {
			t.Parallel()
			doc := readYAML(t, examplePath(ex.file))
			merged := map[string]any{}
			for k, v := range aws {
				merged[k] = v
			}
			for _, k := range []string{"identities", "routes", "dsn"} {
				merged[k] = doc[k]
			}
			b, err := yaml.Marshal(merged)
			if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			for name, sm := range ex.smAWS {
				text = strings.ReplaceAll(text, "env:"+name, "secretsmanager:"+sm)
				if !strings.Contains(string(deploy), `"secretsmanager:`+sm+`"`) || !strings.Contains(string(deploy), "--name "+sm+" ") {
					t.Errorf("DEPLOY.md does not show how to store and name the secret %s", sm)
				}
			}
			for _, name := range ex.hashes {
				text = strings.ReplaceAll(text, "env:"+name, exampleHash())
			}
			if len(ex.hashes) > 0 && !strings.Contains(string(deploy), "pasted from `go run ./gateway hash-password`") {
				t.Error("DEPLOY.md does not say the password hashes are pasted into the file on AWS")
			}
			for i, line := range strings.Split(text, "\n") {
				if localRef.MatchString(line) {
					t.Errorf("line %d still reads a secret from the environment or a file: %s", i+1, line)
				}
			}
			cfg, err := config.Parse(ex.file+" on AWS", []byte(text), func(k string) string { return deployEnv[k] })
			if err != nil {
				t.Fatal(err)
			}
			// What scripts/deploy runs: check-config says OK, and that
			// each secretsmanager: secret is read at run time.
			onAWS := filepath.Join(t.TempDir(), "postern.yaml")
			if err := os.WriteFile(onAWS, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if code, out, errs := checkConfig(onAWS, deployEnv); code != 0 || !strings.HasPrefix(out, onAWS+": OK\n") ||
				strings.Count(out, "is read at run time by the AWS functions") != 3 {
				t.Errorf("gateway check-config as scripts/deploy runs it: exit %d\n%s%s", code, out, errs)
			}
			sm := &fakeSecrets{}
			cache := secrets.New(sm, secrets.DefaultTTL)
			relays := []*config.Relay{&cfg.DSN.Relay}
			for _, r := range cfg.Routes {
				if r.Relay != nil && r.Relay.OAuth != nil {
					relays = append(relays, r.Relay)
				}
			}
			if len(relays) != 3 {
				t.Fatalf("%d relays with oauth, want the two routes' and dsn.relay", len(relays))
			}
			for _, r := range relays {
				for _, ref := range r.SecretRefs() {
					if id, ok := config.SecretsManagerID(ref); ref != "" && (!ok || id == "") {
						t.Errorf("relay %s: secret %q is not a secretsmanager: reference", r.Type, ref)
					}
				}
				if _, err := relayfn.NewTransport(context.Background(), cfg, "relay "+r.Type, r, cache); err != nil {
					t.Errorf("relay %s on AWS: %v", r.Type, err)
				}
			}
		})
	}
}

// checkConfig runs `gateway check-config path` with env as its
// environment.
func checkConfig(path string, env map[string]string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cli.Main(context.Background(), cli.Env{Args: []string{"check-config", path}, Getenv: func(k string) string { return env[k] },
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// serviceAccountKey is a Google service account key file of the shape
// Google issues, with a new RSA key.
func serviceAccountKey(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "example-project", "private_key_id": "0123456789abcdef",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "postern@example-project.iam.gserviceaccount.com", "client_id": "123456789012345678901",
		"token_uri": "https://oauth2.googleapis.com/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// fakeSecrets stands in for Secrets Manager; building a relay must not
// read a secret (the functions read them at first use).
type fakeSecrets struct{}

func (*fakeSecrets) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return nil, errors.New("no Secrets Manager in this test")
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// header is the comment block at the top of the file at path.
func header(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var h strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		h.WriteString(line + "\n")
	}
	return h.String()
}

// TestReadmeMailboxKeysExist keeps README.md's configuration honest: every
// YAML block in it decodes into Config with no unknown key, and every key
// in the key table of "Scanners and printers after Microsoft switches off
// Basic auth" is a field of the relay or identity it names.
func TestReadmeMailboxKeysExist(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, p := range readmeKeyProblems(readme) {
		t.Error(p)
	}
	// The check itself: a misspelt key in a block and in the table.
	bad := strings.Replace(strings.Replace(readme, "tls_min_version: \"1.0\"", "tls_min_versoin: \"1.0\"", 1), "| `relay.send_as` |", "| `relay.send_az` |", 1)
	if got := readmeKeyProblems(bad); len(got) != 2 {
		t.Errorf("misspelt keys gave %d problems, want 2: %q", len(got), got)
	}
}

// readmeKeyProblems lists the keys in readme that Config does not have.
func readmeKeyProblems(readme string) []string {
	var problems []string
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme, -1)
	if len(blocks) == 0 {
		return []string{"README.md has no YAML blocks"}
	}
	for _, m := range blocks {
		dec := yaml.NewDecoder(strings.NewReader(m[1]))
		dec.KnownFields(true)
		var c config.Config
		if err := dec.Decode(&c); err != nil {
			problems = append(problems, fmt.Sprintf("README.md YAML block does not fit the configuration: %v\n%s", err, m[1]))
		}
	}

	const title = "## Scanners and printers after Microsoft switches off Basic auth\n"
	_, section, ok := strings.Cut(readme, title)
	if !ok {
		return append(problems, fmt.Sprintf("README.md has no section %q", strings.TrimSpace(title)))
	}
	if next := strings.Index(section, "\n## "); next >= 0 {
		section = section[:next]
	}
	roots := map[string]reflect.Type{"relay": reflect.TypeFor[config.Relay](), "identities[]": reflect.TypeFor[config.Identity]()}
	keyCell := regexp.MustCompile("^\\| (`[^|]+`) \\|")
	checked, inTable := 0, false
	for _, line := range strings.Split(section, "\n") {
		if line == "| key | meaning |" {
			inTable = true
			continue
		}
		m := keyCell.FindStringSubmatch(line)
		if !inTable || m == nil {
			inTable = inTable && strings.HasPrefix(line, "|")
			continue
		}
		var parent []string
		for _, k := range strings.Split(m[1], ", ") {
			k = strings.Trim(k, "`")
			var path []string
			if strings.HasPrefix(k, ".") {
				path = append(append([]string{}, parent...), strings.Split(k[1:], ".")...)
			} else {
				path = strings.Split(k, ".")
			}
			parent = path[:len(path)-1]
			checked++
			typ, ok := roots[path[0]]
			if !ok {
				problems = append(problems, fmt.Sprintf("README key %s: no such section %s", k, path[0]))
				continue
			}
			if err := fieldPath(typ, path[1:]); err != nil {
				problems = append(problems, fmt.Sprintf("README key %s: %v", strings.Join(path, "."), err))
			}
		}
	}
	if checked < 10 {
		problems = append(problems, fmt.Sprintf("checked %d keys in the section's key table; the table is gone or its format changed", checked))
	}
	return problems
}

// fieldPath walks yaml field names from typ.
func fieldPath(typ reflect.Type, names []string) error {
	for _, name := range names {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		found := false
		for f := range typ.Fields() {
			if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag == name {
				typ, found = f.Type, true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s has no key %q", typ.Name(), name)
		}
	}
	return nil
}
