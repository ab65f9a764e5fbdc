package config

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/relay/relaytest"
)

// caYAML is a route relaying through a smarthost with a private CA; each
// case of TestCAFile edits it.
const caYAML = `
routes:
  - name: lan
    match: {recipients: ["*"]}
    relay:
      type: smtp
      addr: "smtp.lan.example:587"
      ca_file: CAFILE
`

// writeCA writes a PEM CA certificate to a file of the test's and returns
// its path.
func writeCA(t *testing.T) string {
	t.Helper()
	server, _ := relaytest.TLSConfigs(t)
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificates[0].Certificate[0]})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A relay's ca_file must be a readable file holding a PEM certificate, on
// an smtp relay that speaks TLS; start and check-config (both run
// Validate) refuse anything else, naming the key and the fix.
func TestCAFile(t *testing.T) {
	t.Parallel()
	ca := writeCA(t)
	dir := t.TempDir()
	noCert := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(noCert, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badCert := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(badCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	c, err := Parse("test", []byte(strings.Replace(caYAML, "CAFILE", ca, 1)), noenv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Routes[0].Relay.CAFile; got != ca {
		t.Errorf("ca_file = %q, want %q", got, ca)
	}
	if _, err := CAPool(ca); err != nil {
		t.Errorf("CAPool(%s): %v", ca, err)
	}

	for _, tc := range []struct {
		name, old, new string
		want           []string
	}{
		{"missing file", "CAFILE", missing, []string{"routes[0].relay.ca_file: ", missing, "no such file", "name a PEM file"}},
		{"no certificate", "CAFILE", noCert, []string{"routes[0].relay.ca_file: ", "holds no PEM certificate", "BEGIN CERTIFICATE"}},
		{"bad certificate", "CAFILE", badCert, []string{"routes[0].relay.ca_file: ", "certificate 1", "export the CA certificate again"}},
		{"tls none", "ca_file:", "tls: none\n      ca_file:", []string{"routes[0].relay.ca_file: applies with tls: starttls or implicit only"}},
		{"not smtp", "type: smtp\n      addr: \"smtp.lan.example:587\"", "type: file\n      path: out", []string{"routes[0].relay.ca_file: applies to type: smtp only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(caYAML, tc.old, tc.new, 1)
			y = strings.Replace(y, "CAFILE", ca, 1)
			_, err := Parse("test", []byte(y), noenv)
			if err == nil {
				t.Fatalf("config accepted:\n%s", y)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to hold %q", err, w)
				}
			}
		})
	}
}

// check-config reports a missing ca_file, which would otherwise stop the
// relay at start.
func TestCheckCAFile(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	p := filepath.Join(t.TempDir(), "postern.yaml")
	if err := os.WriteFile(p, []byte(strings.Replace(caYAML, "CAFILE", missing, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Check(p, noenv, SecretDecoders{})
	if err == nil || !strings.Contains(err.Error(), "routes[0].relay.ca_file: ") {
		t.Errorf("Check: %v, want an error naming routes[0].relay.ca_file", err)
	}
}
