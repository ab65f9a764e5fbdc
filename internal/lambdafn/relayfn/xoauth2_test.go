package relayfn

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
)

// m365 is a loopback smarthost that behaves as smtp.office365.com:587
// does for OAuth: AUTH only after STARTTLS, only XOAUTH2, and only with a
// token the Entra stand-in issued for the outlook scope and still deems
// valid; any other draws the 334 error challenge and then 535 5.7.3.
type m365 struct {
	addr   string
	caFile string // a PEM file of the CA of its certificate, for the relay's ca_file
	user   string
	// accepts decides a presented token: by default, one the Entra
	// stand-in issued for the outlook scope and still deems valid.
	accepts func(token string) bool

	mu        sync.Mutex
	presented []string // tokens in AUTH, in order
	txs       [][]byte
}

func newM365(t *testing.T, ent *entratest.Server, user string) *m365 {
	t.Helper()
	serverTLS, _ := relaytest.TLSConfigs(t)
	m := &m365{user: user, caFile: filepath.Join(t.TempDir(), "ca.pem"), accepts: func(tok string) bool {
		is, valid := ent.Lookup(tok)
		return valid && is.Scope == oauthtok.ScopeOutlook
	}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &m365Session{m: m, conn: c}, nil
	}))
	srv.Domain = "smtp.office365.test"
	srv.TLSConfig = serverTLS
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxLineLength = 8192 // a token in base64 on the AUTH line
	srv.ErrorLog = quiet{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverTLS.Certificates[0].Certificate[0]})
	if err := os.WriteFile(m.caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return m
}

func (m *m365) snapshot() (presented []string, txs [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.presented...), append([][]byte(nil), m.txs...)
}

// runs numbers test runs, for names the process-wide cache must not share.
var runs atomic.Int64

type quiet struct{}

func (quiet) Printf(string, ...any) {}
func (quiet) Println(...any)        {}

type m365Session struct {
	m      *m365
	conn   *smtp.Conn
	authed bool
}

func (s *m365Session) AuthMechanisms() []string { return []string{"XOAUTH2"} }

func (s *m365Session) Auth(mech string) (sasl.Server, error) {
	if mech != "XOAUTH2" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	challenged := false
	return saslFunc(func(resp []byte) ([]byte, bool, error) {
		if challenged {
			return nil, false, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}
		}
		if resp == nil {
			return []byte{}, false, nil
		}
		rest, ok := strings.CutPrefix(string(resp), "user="+s.m.user+"\x01auth=Bearer ")
		tok, ok2 := strings.CutSuffix(rest, "\x01\x01")
		s.m.mu.Lock()
		s.m.presented = append(s.m.presented, tok)
		s.m.mu.Unlock()
		_, isTLS := s.conn.TLSConnectionState()
		if ok && ok2 && isTLS && s.m.accepts(tok) {
			s.authed = true
			return nil, true, nil
		}
		challenged = true
		return []byte(`{"status":"401","schemes":"Bearer","scope":"https://outlook.office.com/.default"}`), false, nil
	}), nil
}

// saslFunc is a sasl.Server from its Next.
type saslFunc func(resp []byte) ([]byte, bool, error)

func (f saslFunc) Next(resp []byte) ([]byte, bool, error) { return f(resp) }

var _ sasl.Server = saslFunc(nil)

func (s *m365Session) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (s *m365Session) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (s *m365Session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	s.m.txs = append(s.m.txs, b)
	s.m.mu.Unlock()
	return nil
}

func (s *m365Session) Reset()        {}
func (s *m365Session) Logout() error { return nil }

// xoauthConfig is a configuration relaying route m365 through m with
// XOAUTH2 as the app clientID of tenant, its secret in a file.
func xoauthConfig(t *testing.T, ent *entratest.Server, m *m365, tenant, clientID, secret string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `
data_dir: ` + dir + `
routes:
  - name: m365
    match: {recipients: ["*"]}
    relay:
      type: smtp
      addr: "` + m.addr + `"
      tls: starttls
      ca_file: "` + m.caFile + `"
      auth_mechanism: xoauth2
      username: scanner@example.com
      oauth:
        provider: entra
        tenant: ` + tenant + `
        client_id: ` + clientID + `
        client_secret: "file:` + secretFile + `"
        token_url: "` + ent.TokenURL(tenant) + `"
`
	cfg, err := config.Parse("test", []byte(yaml), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func send(t *testing.T, tr relay.Transport, body string) (*relay.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return tr.Send(ctx, &relay.Message{
		ID: "msg-1", From: "scanner@printer.local", To: []relay.Rcpt{{Addr: "accounts@example.com"}},
		Body: strings.NewReader(body), Size: int64(len(body)),
	})
}

func delivered(t *testing.T, res *relay.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if len(res.Rcpts) != 1 || !res.Rcpts[0].Reply.Accepted() {
		t.Fatalf("not delivered: %+v", res.Rcpts)
	}
}

// From YAML to Exchange Online's SMTP: the transport fetches a token from
// Entra with the configured app, signs in with it over STARTTLS, reuses
// it for the next message, and when the token is revoked it drops it,
// fetches one new token and delivers on a second connection.
func TestXOAUTH2EndToEnd(t *testing.T) {
	ent := entratest.New(t)
	// The process's one token cache outlives a run: a tenant per run
	// keeps -count=N runs apart.
	tenant := fmt.Sprintf("e2e%d.example", runs.Add(1))
	ent.AddApp(tenant, "app-e2e", "right-secret")
	m := newM365(t, ent, "scanner@example.com")
	cfg := xoauthConfig(t, ent, m, tenant, "app-e2e", "right-secret")
	routes, err := Routes(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := routes["m365"].Transport

	res, err := send(t, tr, "Subject: one\r\n\r\nfirst\r\n")
	delivered(t, res, err)
	res, err = send(t, tr, "Subject: two\r\n\r\nsecond\r\n")
	delivered(t, res, err)
	reqs := ent.Requests()
	if len(reqs) != 1 {
		t.Fatalf("token requests for two messages = %d, want 1 (the cached token reused)", len(reqs))
	}
	f := reqs[0].Form
	if reqs[0].Path != "/"+tenant+"/oauth2/v2.0/token" || f.Get("client_id") != "app-e2e" ||
		f.Get("scope") != oauthtok.ScopeOutlook || f.Get("grant_type") != "client_credentials" {
		t.Errorf("token request = %s %v", reqs[0].Path, f)
	}
	presented, txs := m.snapshot()
	if len(presented) != 2 || presented[0] != presented[1] || len(txs) != 2 || !bytes.Contains(txs[1], []byte("second")) {
		t.Fatalf("presented %d tokens (same: %v), %d messages", len(presented), len(presented) == 2 && presented[0] == presented[1], len(txs))
	}

	old := presented[0]
	ent.Revoke(old)
	res, err = send(t, tr, "Subject: three\r\n\r\nthird\r\n")
	delivered(t, res, err)
	if n := len(ent.Requests()); n != 2 {
		t.Errorf("token requests after the revocation = %d, want 2 (one renewal)", n)
	}
	presented, txs = m.snapshot()
	if len(presented) != 4 || presented[2] != old || presented[3] == old || !ent.Valid(presented[3]) {
		t.Errorf("after revocation the smarthost saw %d tokens; want the revoked one, then a new valid one", len(presented))
	}
	if len(txs) != 3 || !bytes.Contains(txs[2], []byte("third")) {
		t.Errorf("messages = %d, want 3", len(txs))
	}
	// The renewed token is the cached one now: the next message needs no
	// fetch.
	res, err = send(t, tr, "Subject: four\r\n\r\nfourth\r\n")
	delivered(t, res, err)
	if n := len(ent.Requests()); n != 2 {
		t.Errorf("token requests after a fourth message = %d, want 2", n)
	}
}

// A wrong secret or missing consent at the token endpoint is tested
// through the relay stage in tokenfail_test.go: a DSN with Entra's reason.

// Two relays with the same app, tenant and scope (a route and dsn.relay)
// share one token; another app gets its own.
func TestXOAUTH2OneCachePerProcess(t *testing.T) {
	ent := entratest.New(t)
	ent.AddApp("contoso.example", "app-shared", "s")
	ent.AddApp("contoso.example", "app-other", "s")
	m := newM365(t, ent, "scanner@example.com")
	cfg := xoauthConfig(t, ent, m, "contoso.example", "app-shared", "s")
	r := *cfg.Routes[0].Relay
	a, err := NewTransport(context.Background(), cfg, "routes m365 relay", &r, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTransport(context.Background(), cfg, "dsn.relay", &r, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := r
	o := *r.OAuth
	o.ClientID = "app-other"
	other.OAuth = &o
	c, err := NewTransport(context.Background(), cfg, "dsn.relay", &other, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []relay.Transport{a, b, c} {
		res, err := send(t, tr, "Subject: x\r\n\r\nx\r\n")
		delivered(t, res, err)
	}
	if n := len(ent.Requests()); n != 2 {
		t.Errorf("token requests = %d, want 2 (one per app)", n)
	}
}

// NewTransport names the key: a Secrets Manager client secret needs the
// AWS functions' cache, and an unresolvable secret fails at build.
func TestXOAUTH2ConfigErrors(t *testing.T) {
	cfg := config.Default()
	r := config.Relay{Type: "smtp", Addr: "127.0.0.1:587", AuthMechanism: "xoauth2", Username: "u@example.com",
		OAuth: &config.OAuth{Provider: "entra", Tenant: "t", ClientID: "c", ClientSecret: "secretsmanager:postern/m365"}}
	_, err := NewTransport(context.Background(), cfg, "dsn.relay", &r, nil)
	if err == nil || !strings.Contains(err.Error(), "dsn.relay.oauth.client_secret: secretsmanager: secrets are read by the AWS functions only") {
		t.Errorf("secretsmanager without a cache: %v", err)
	}
	r.OAuth.ClientSecret = "env:POSTERN_TEST_UNSET_SECRET"
	_, err = NewTransport(context.Background(), cfg, "dsn.relay", &r, nil)
	if err == nil || !strings.Contains(err.Error(), "dsn.relay.oauth.client_secret: environment variable POSTERN_TEST_UNSET_SECRET is not set") {
		t.Errorf("unset env secret: %v", err)
	}
	r.OAuth = nil
	_, err = NewTransport(context.Background(), cfg, "dsn.relay", &r, nil)
	if err == nil || !strings.Contains(err.Error(), "dsn.relay.oauth: is missing") {
		t.Errorf("no oauth: %v", err)
	}
}
