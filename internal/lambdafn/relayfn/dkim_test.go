package relayfn_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/dkimsign"
	"github.com/postern/postern/internal/dkimsign/dkimsigntest"
	"github.com/postern/postern/internal/lambdafn/relayfn"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
)

// Keys are made once per test binary: RSA generation takes a while.
var (
	rsaKey = sync.OnceValue(func() *dkimsign.Key { return mustGenerate(dkimsign.RSA) })
	edKey  = sync.OnceValue(func() *dkimsign.Key { return mustGenerate(dkimsign.Ed25519) })
)

func mustGenerate(alg string) *dkimsign.Key {
	k, err := dkimsign.GenerateKey(alg, 0)
	if err != nil {
		panic(err)
	}
	return k
}

// keyFile writes k's PEM under t's directory and returns the file:
// reference to it.
func keyFile(t *testing.T, k *dkimsign.Key) string {
	t.Helper()
	pem, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "dkim.pem")
	if err := os.WriteFile(p, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

// checkSigned fails t unless msg carries exactly one signature and it
// passes go-msgauth's and dkimpy's verification with d=domain.
func checkSigned(t *testing.T, msg []byte, recs dkimsigntest.Records, domain string) {
	t.Helper()
	vs := dkimsigntest.VerifyGo(t, msg, recs)
	if len(vs) != 1 {
		t.Fatalf("go-msgauth found %d signatures, want 1:\n%s", len(vs), msg)
	}
	if vs[0].Err != nil || vs[0].Domain != domain {
		t.Errorf("go-msgauth: d=%s err=%v, want d=%s passing", vs[0].Domain, vs[0].Err, domain)
	}
	rs := dkimsigntest.VerifyDkimpy(t, msg, recs)
	if len(rs) != 1 || !rs[0].Pass || rs[0].Domain != domain {
		t.Errorf("dkimpy: %+v, want one passing signature with d=%s", rs, domain)
	}
}

// relayMessage is a device's message to one recipient, as the relay
// stage hands it to a transport (LF line ends, as devices write them).
func relayMessage(id string) *relay.Message {
	raw := "From: Scanner 3F <scanner@printer.example>\nTo: boss@contoso.test\nSubject: scan " + id +
		"\nMessage-ID: <" + id + "@printer.example>\n\nline 1\n.\nline 3\n"
	return &relay.Message{ID: postern.MsgID("01JDKIMTEST" + strings.ToUpper(id)), From: "scanner@printer.example",
		To: []relay.Rcpt{{Addr: "boss@contoso.test"}}, Body: strings.NewReader(raw), Size: int64(len(raw))}
}

// sendVia sends relayMessage(id) through tr and returns the transaction
// srv received last.
func sendVia(t *testing.T, tr relay.Transport, srv *relaytest.Server, id string) relaytest.Tx {
	t.Helper()
	res, err := tr.Send(context.Background(), relayMessage(id))
	if err != nil {
		t.Fatalf("send %s: %v", id, err)
	}
	if len(res.Rcpts) != 1 || !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("send %s: %+v, want the recipient accepted", id, res)
	}
	txs := srv.Txs()
	if len(txs) == 0 {
		t.Fatalf("send %s: the smarthost received nothing", id)
	}
	return txs[len(txs)-1]
}

// Relay routes with dkim_sign sign what reaches the smarthost with the
// keys of the From domain as sent: the device's own (an Ed25519 key read
// from a file), or after from: rewrite the send_as mailbox's (an RSA key
// from the environment, for its parent domain). A route without
// dkim_sign sends the message unsigned, though a key for its From exists.
func TestRoutesSignWithDKIM(t *testing.T) {
	srv := relaytest.NewServer(t, relaytest.Options{})
	pem, err := rsaKey().MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("POSTERN_TEST_DKIM_CONTOSO", string(pem))
	cfg := cfgWith(t,
		config.Route{Name: "signed", Relay: &config.Relay{Type: "smtp", Addr: srv.Addr, TLS: "none", DKIMSign: true}},
		config.Route{Name: "rewritten", Relay: &config.Relay{Type: "smtp", Addr: srv.Addr, TLS: "none", DKIMSign: true,
			SendAs: "mailbox@out.contoso.test", From: "rewrite"}},
		config.Route{Name: "plain", Relay: &config.Relay{Type: "smtp", Addr: srv.Addr, TLS: "none"}},
	)
	cfg.DKIM.Keys = []config.DKIMKey{
		{Domain: "printer.example", Selector: "dev2026", Key: keyFile(t, edKey())},
		{Domain: "contoso.test", Selector: "gw", Key: "env:POSTERN_TEST_DKIM_CONTOSO"},
	}
	recs := dkimsigntest.Records{
		"dev2026._domainkey.printer.example": edKey().PublicRecord(),
		"gw._domainkey.contoso.test":         rsaKey().PublicRecord(),
	}
	routes, err := relayfn.Routes(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}

	tx := sendVia(t, routes["signed"].Transport, srv, "a1")
	checkSigned(t, tx.Data, recs, "printer.example")

	tx = sendVia(t, routes["rewritten"].Transport, srv, "a2")
	if !strings.Contains(string(tx.Data), "\r\nFrom: \"Scanner 3F\" <mailbox@out.contoso.test>\r\n") {
		t.Fatalf("From not rewritten:\n%s", tx.Data)
	}
	checkSigned(t, tx.Data, recs, "contoso.test")

	tx = sendVia(t, routes["plain"].Transport, srv, "a3")
	if strings.Contains(strings.ToLower(string(tx.Data)), "dkim-signature:") {
		t.Errorf("a route without dkim_sign signed:\n%s", tx.Data)
	}
}

// A key that cannot be read or parsed stops the build with an error
// naming the key's place in dkim.keys, before any mail is sent; routes
// without dkim_sign never read the keys.
func TestRoutesDKIMKeyErrors(t *testing.T) {
	t.Setenv("POSTERN_TEST_DKIM_EMPTY", "")
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ key, want string }{
		"unset env":                     {"env:POSTERN_TEST_DKIM_EMPTY", "config: dkim.keys[1].key: "},
		"missing file":                  {"file:" + filepath.Join(t.TempDir(), "none.pem"), "config: dkim.keys[1].key: "},
		"not a key":                     {"file:" + bad, "config: dkim.keys[1].key: dkim key: "},
		"secretsmanager outside of AWS": {"secretsmanager:postern/dkim", "config: dkim.keys[1].key: secretsmanager: "},
	} {
		t.Run(name, func(t *testing.T) {
			relayCfg := func(sign bool) *config.Config {
				cfg := cfgWith(t, config.Route{Name: "out", Relay: &config.Relay{Type: "file", Path: "out", DKIMSign: sign}})
				cfg.DKIM.Keys = []config.DKIMKey{
					{Domain: "printer.example", Selector: "s1", Key: keyFile(t, edKey())},
					{Domain: "contoso.test", Selector: "s1", Key: c.key},
				}
				return cfg
			}
			_, err := relayfn.Routes(context.Background(), relayCfg(true), nil)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %v, want it to start %q", err, c.want)
			}
			if _, err := relayfn.Routes(context.Background(), relayCfg(false), nil); err != nil {
				t.Errorf("without dkim_sign: %v, want the keys left unread", err)
			}
		})
	}
}
