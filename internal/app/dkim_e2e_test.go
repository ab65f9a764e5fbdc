package app_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dkimsign"
	"github.com/postern/postern/internal/dkimsign/dkimsigntest"
	"github.com/postern/postern/internal/relay/relaytest"
)

// The one-machine gateway signs what it sends with dkim.keys: a notice
// for a message the webhook refused for good (410), written by the file
// dsn relay, is signed with the key of gw.test (the hostname, so
// MAILER-DAEMON@gw.test) when dsn.dkim_sign is set; a message relayed
// through a loopback smarthost on a route with dkim_sign and from:
// rewrite is signed for the rewritten From's domain. Both verify with
// go-msgauth and dkimpy.
func TestGatewaySignsNoticesAndRelayedMail(t *testing.T) {
	t.Parallel()
	key, err := dkimsign.GenerateKey(dkimsign.Ed25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := key.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "gw.pem")
	if err := os.WriteFile(keyPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	recs := dkimsigntest.Records{"pg1._domainkey.gw.test": key.PublicRecord()}

	h, hs := newHook(t)
	h.status = 410
	smarthost := relaytest.NewServer(t, relaytest.Options{})
	cfg := testConfig(t, hs.URL)
	cfg.Identities[0].AllowedSenders = []string{"*@lan.example"}
	cfg.DKIM.Keys = []config.DKIMKey{{Domain: "gw.test", Selector: "pg1", Key: "file:" + keyPath}}
	cfg.DSN.DKIMSign = true
	cfg.Routes = append(cfg.Routes, config.Route{Name: "mx", Match: config.Match{Recipients: []string{"*@relay.test"}},
		Relay: &config.Relay{Type: "smtp", Addr: smarthost.Addr, TLS: "none", DKIMSign: true, SendAs: "scans@gw.test", From: "rewrite"}})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := boot(t, cfg)
	msg := []byte("From: scanner@lan.example\r\nSubject: weekly report\r\nMessage-ID: <k1@lan.example>\r\n\r\nbody\r\n")
	if _, err := send(t, a.SMTPAddrs()[0].String(), "scanner@lan.example", []string{"gone@app.test", "boss@relay.test"}, msg); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(cfg.DataDir, cfg.DSN.Relay.Path)
	name := waitFor(t, func() []string { return dsnFiles(dir) })[0]
	notice, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(notice), "\r\nFrom: Mail Delivery System <MAILER-DAEMON@gw.test>\r\n") ||
		!strings.Contains(string(notice), "Final-Recipient: rfc822; gone@app.test") {
		t.Fatalf("not the notice for gone@app.test from MAILER-DAEMON@gw.test:\n%s", notice)
	}
	checkOneSignature(t, "notice", notice, recs, "gw.test")

	waitFor(t, func() []string {
		if len(smarthost.Txs()) == 0 {
			return nil
		}
		return []string{"sent"}
	})
	relayed := smarthost.Txs()[0].Data
	if !strings.Contains(string(relayed), "\r\nFrom: <scans@gw.test>\r\n") {
		t.Fatalf("relayed From not rewritten:\n%s", relayed)
	}
	checkOneSignature(t, "relayed message", relayed, recs, "gw.test")
}

// checkOneSignature fails t unless msg has exactly one DKIM signature and
// it passes both verifiers with d=domain.
func checkOneSignature(t *testing.T, what string, msg []byte, recs dkimsigntest.Records, domain string) {
	t.Helper()
	vs := dkimsigntest.VerifyGo(t, msg, recs)
	if len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != domain {
		for _, v := range vs {
			t.Logf("go-msgauth: d=%s err=%v", v.Domain, v.Err)
		}
		t.Fatalf("%s: %d signatures, want one passing go-msgauth with d=%s:\n%s", what, len(vs), domain, msg)
	}
	if rs := dkimsigntest.VerifyDkimpy(t, msg, recs); len(rs) != 1 || !rs[0].Pass || rs[0].Domain != domain {
		t.Errorf("%s: dkimpy %+v, want one passing signature with d=%s", what, rs, domain)
	}
}
