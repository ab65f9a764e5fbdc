package relayfn_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
)

// writeCA writes the certificate server presents (relaytest's certificates
// are their own CA, one per call: a private CA no system trusts) to a PEM
// file of the test's and returns its path.
func writeCA(t *testing.T, server *tls.Config) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificates[0].Certificate[0]})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A smarthost whose certificate a private CA signed is trusted through
// the relay's ca_file, over STARTTLS and implicit TLS; without it, or
// with another CA's file, the certificate is refused: every recipient
// gets a temporary 4.7.5 (the job is retried) and nothing is sent.
func TestSmarthostCAFile(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"starttls", "implicit"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			serverTLS, _ := relaytest.TLSConfigs(t)
			otherTLS, _ := relaytest.TLSConfigs(t)
			srv := relaytest.NewServer(t, relaytest.Options{TLS: serverTLS, Implicit: mode == "implicit"})
			for _, c := range []struct {
				name, caFile string
				status       string
				sent         int
			}{
				{"no ca_file", "", "4.7.5", 0},
				{"another CA", writeCA(t, otherTLS), "4.7.5", 0},
				{"its CA", writeCA(t, serverTLS), "2.0.0", 1},
			} {
				r := config.Relay{Type: "smtp", Addr: srv.Addr, TLS: mode, CAFile: c.caFile}
				cfg := cfgWith(t, config.Route{Name: "lan", Match: config.Match{Recipients: []string{"*"}}, Relay: &r})
				if err := cfg.Validate(); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				tr, err := relayfn.NewTransport(context.Background(), cfg, "routes lan relay", &r, nil)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				before := len(srv.Txs())
				res, err := tr.Send(context.Background(), &relay.Message{ID: "m1", From: "scanner@lan.example",
					To: []relay.Rcpt{{Addr: "a@example.com"}}, Body: strings.NewReader("Subject: hi\r\n\r\nhello\r\n")})
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if len(res.Rcpts) != 1 || res.Rcpts[0].Reply.Status != c.status {
					t.Errorf("%s: result %+v, want one recipient with status %s", c.name, res.Rcpts, c.status)
				}
				if c.status == "4.7.5" && !strings.Contains(res.Rcpts[0].Reply.Text, "TLS") {
					t.Errorf("%s: reply %+v does not say TLS failed", c.name, res.Rcpts[0].Reply)
				}
				txs := srv.Txs()[before:]
				if len(txs) != c.sent {
					t.Fatalf("%s: %d messages delivered, want %d", c.name, len(txs), c.sent)
				}
				if c.sent == 1 && !txs[0].TLS {
					t.Errorf("%s: delivered without TLS", c.name)
				}
			}
		})
	}
}

// A ca_file the relay cannot use stops the build with the key named, as
// a bad password does.
func TestSmarthostCAFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := cfgWith(t)
	for _, f := range []string{filepath.Join(dir, "missing.pem"), empty} {
		r := config.Relay{Type: "smtp", Addr: "127.0.0.1:2587", CAFile: f}
		tr, err := relayfn.NewTransport(context.Background(), cfg, "routes lan relay", &r, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "config: routes lan relay.ca_file: ") {
			t.Errorf("ca_file %s: built %T, error %v; want one naming routes lan relay.ca_file", f, tr, err)
		}
	}
}
