package smtprelay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/oauthtok"
	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
	"github.com/postern/postern/internal/relay/relaytest"
)

// xoServer is a go-smtp server on loopback that behaves as
// smtp.office365.com:587 does for OAuth: STARTTLS, then only AUTH
// XOAUTH2; a token it does not know draws the 334 JSON error challenge,
// and the empty answer to it a 535 5.7.3.
type xoServer struct {
	Addr string
	user string

	mu     sync.Mutex
	valid  map[string]bool
	irs    []string // decoded initial responses, in order
	after  []string // the client's answers to the error challenge
	txs    [][]byte // accepted messages
	asked  int      // AUTH lines without an initial response
	tlsOff bool     // a session authenticated without TLS
}

// The server's 535 to a refused token, as Exchange Online words it.
var errTokenRefused = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}

const xoChallenge = `{"status":"401","schemes":"Bearer","scope":"https://outlook.office.com/.default"}`

func newXOServer(t *testing.T, user string, valid ...string) (*xoServer, *tls.Config) {
	t.Helper()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	x := &xoServer{user: user, valid: map[string]bool{}}
	for _, v := range valid {
		x.valid[v] = true
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &xoSession{srv: x, conn: c}, nil
	}))
	srv.Domain = "smtp.office365.test"
	srv.TLSConfig = serverTLS
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	// Room for an Entra ID token in base64 on one line, as Exchange
	// Online takes it; go-smtp's default is 2,000.
	srv.MaxLineLength = 8192
	srv.ErrorLog = discardLogger{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x.Addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		ln.Close()
		<-done
	})
	return x, clientTLS
}

func (x *xoServer) snapshot() (irs, after []string, txs [][]byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.irs...), append([]string(nil), x.after...), append([][]byte(nil), x.txs...)
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

type xoSession struct {
	srv    *xoServer
	conn   *smtp.Conn
	authed bool
	rcpts  int
}

var _ smtp.AuthSession = (*xoSession)(nil)

func (s *xoSession) AuthMechanisms() []string { return []string{"XOAUTH2"} }

func (s *xoSession) Auth(mech string) (sasl.Server, error) {
	if mech != "XOAUTH2" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return &xoSASL{s: s}, nil
}

// xoSASL is the server side of XOAUTH2.
type xoSASL struct {
	s          *xoSession
	challenged bool
}

func (a *xoSASL) Next(resp []byte) ([]byte, bool, error) {
	x := a.s.srv
	if a.challenged {
		x.mu.Lock()
		x.after = append(x.after, string(resp))
		x.mu.Unlock()
		if len(resp) != 0 {
			return nil, false, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "expected an empty answer"}
		}
		return nil, false, errTokenRefused
	}
	if resp == nil {
		// No initial response on the AUTH line: ask for it.
		x.mu.Lock()
		x.asked++
		x.mu.Unlock()
		return []byte{}, false, nil
	}
	ir := string(resp)
	x.mu.Lock()
	x.irs = append(x.irs, ir)
	x.mu.Unlock()
	rest, ok := strings.CutPrefix(ir, "user="+x.user+"\x01auth=Bearer ")
	tok, ok2 := strings.CutSuffix(rest, "\x01\x01")
	x.mu.Lock()
	good := ok && ok2 && x.valid[tok]
	x.mu.Unlock()
	if good {
		_, isTLS := a.s.conn.TLSConnectionState()
		if !isTLS {
			x.mu.Lock()
			x.tlsOff = true
			x.mu.Unlock()
		}
		a.s.authed = true
		return nil, true, nil
	}
	a.challenged = true
	return []byte(xoChallenge), false, nil
}

func (s *xoSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (s *xoSession) Rcpt(string, *smtp.RcptOptions) error { s.rcpts++; return nil }

func (s *xoSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	s.srv.txs = append(s.srv.txs, b)
	s.srv.mu.Unlock()
	return nil
}

func (s *xoSession) Reset()        {}
func (s *xoSession) Logout() error { return nil }

// tokens hands out tokens in order (the last one again when they run
// out) and records invalidations.
type tokens struct {
	mu          sync.Mutex
	list        []string
	calls       int
	invalidated []string
}

func (k *tokens) source(context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := min(k.calls, len(k.list)-1)
	k.calls++
	return k.list[i], nil
}

func (k *tokens) invalidate(tok string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.invalidated = append(k.invalidated, tok)
}

func (k *tokens) state() (calls int, invalidated []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls, append([]string(nil), k.invalidated...)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const mailbox = "scanner-relay@contoso.example"

func xoTransport(t *testing.T, addr string, clientTLS *tls.Config, k *tokens) (*Transport, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	tr := newTransport(t, Config{Addr: addr, TLSConfig: clientTLS, Username: mailbox, AuthMechanism: "xoauth2",
		TokenSource: k.source, InvalidateToken: k.invalidate,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return tr, logs
}

// noTokenIn fails when any of the tokens appears in s, raw or in base64.
func noTokenIn(t *testing.T, what, s string, toks ...string) {
	t.Helper()
	for _, tok := range toks {
		ir := base64.StdEncoding.EncodeToString([]byte("user=" + mailbox + "\x01auth=Bearer " + tok + "\x01\x01"))
		if strings.Contains(s, tok) || strings.Contains(s, ir) {
			t.Errorf("%s holds the token %q: %s", what, tok, s)
		}
	}
}

func TestXOAUTH2Delivers(t *testing.T) {
	t.Parallel()
	// A short token goes on the AUTH line; one as long as Entra ID's
	// (1,500 to 2,500 characters) does not fit in 512 octets and goes as
	// the answer to an empty 334.
	for name, tok := range map[string]string{
		"short": "ya29.a0AfB_valid",
		"long":  "eyJ0eXAiOiJKV1Qi." + strings.Repeat("QUJDREVGR0hJSktMTU5PUA", 100) + ".sig",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, clientTLS := newXOServer(t, mailbox, tok)
			k := &tokens{list: []string{tok}}
			tr, logs := xoTransport(t, srv.Addr, clientTLS, k)
			res := send(t, tr, message("scanner@lan.example", "a@example.com"))
			check(t, res, map[string]want{"a@example.com": {250, "2.0.0", "", ""}})
			irs, after, txs := srv.snapshot()
			wantIR := "user=" + mailbox + "\x01auth=Bearer " + tok + "\x01\x01"
			if len(irs) != 1 || irs[0] != wantIR {
				t.Errorf("initial responses %q, want [%q]", irs, wantIR)
			}
			if len(after) != 0 {
				t.Errorf("answers to a challenge %q, want none", after)
			}
			if len(txs) != 1 || string(txs[0]) != testBody {
				t.Errorf("messages %q, want [%q]", txs, testBody)
			}
			srv.mu.Lock()
			tlsOff, asked := srv.tlsOff, srv.asked
			srv.mu.Unlock()
			if tlsOff {
				t.Error("authenticated before STARTTLS")
			}
			if wantAsked := len(tok) > 300; (asked == 1) != wantAsked || asked > 1 {
				t.Errorf("server asked for the initial response %d times; want it on the AUTH line only for the short token", asked)
			}
			if calls, inv := k.state(); calls != 1 || len(inv) != 0 {
				t.Errorf("token source called %d times, invalidated %q; want 1 and none", calls, inv)
			}
			noTokenIn(t, "the log", logs.String(), tok)
		})
	}
}

func TestXOAUTH2ExpiredTokenIsRenewedOnce(t *testing.T) {
	t.Parallel()
	const expired, fresh = "ya29.expired-at-0400", "ya29.fresh-after-0400"
	srv, clientTLS := newXOServer(t, mailbox, fresh)
	k := &tokens{list: []string{expired, fresh}}
	tr, logs := xoTransport(t, srv.Addr, clientTLS, k)
	m := message("scanner@lan.example", "a@example.com", "b@example.com")
	res := send(t, tr, m)
	check(t, res, map[string]want{"a@example.com": {250, "2.0.0", "", ""}, "b@example.com": {250, "2.0.0", "", ""}})
	irs, after, txs := srv.snapshot()
	if len(irs) != 2 || !strings.Contains(irs[0], expired) || !strings.Contains(irs[1], fresh) {
		t.Errorf("initial responses %q, want the expired token then the fresh one", irs)
	}
	// The client answered the JSON error challenge with an empty line.
	if len(after) != 1 || after[0] != "" {
		t.Errorf("answers to the error challenge %q, want one empty", after)
	}
	if len(txs) != 1 || string(txs[0]) != testBody {
		t.Errorf("messages %q, want one, the body", txs)
	}
	if calls, inv := k.state(); calls != 2 || len(inv) != 1 || inv[0] != expired {
		t.Errorf("token source called %d times, invalidated %q; want 2 and [%q]", calls, inv, expired)
	}
	out := logs.String()
	if !strings.Contains(out, "refused the oauth token") || !strings.Contains(out, "msg_id="+string(m.ID)) ||
		!strings.Contains(out, "535 5.7.3") {
		t.Errorf("log lacks the retry line with msg_id and the reply:\n%s", out)
	}
	noTokenIn(t, "the log", out, expired, fresh)
}

func TestXOAUTH2RefusedTwiceFails(t *testing.T) {
	t.Parallel()
	const wrong1, wrong2 = "ya29.no-consent-1", "ya29.no-consent-2"
	srv, clientTLS := newXOServer(t, mailbox, "ya29.the-only-good-one")
	k := &tokens{list: []string{wrong1, wrong2, "ya29.never-asked-for"}}
	tr, logs := xoTransport(t, srv.Addr, clientTLS, k)
	res := send(t, tr, message("scanner@lan.example", "a@example.com", "b@example.com"))
	// The provider's 535 5.7.3 with its words, as class 4: an AUTH refusal
	// is this side's set-up, which the operator fixes (consent, SMTP AUTH
	// for the mailbox) while the message waits.
	w := want{535, "4.7.3", "5.7.3 Authentication unsuccessful", ""}
	check(t, res, map[string]want{"a@example.com": w, "b@example.com": w})
	if r := res.Rcpts[0].Reply; r.Permanent() || r.Accepted() {
		t.Errorf("reply %+v, want temporary", r)
	}
	irs, after, txs := srv.snapshot()
	if len(irs) != 2 || !strings.Contains(irs[0], wrong1) || !strings.Contains(irs[1], wrong2) {
		t.Errorf("initial responses %q, want the two tokens once each and no third AUTH", irs)
	}
	if len(after) != 2 || after[0] != "" || after[1] != "" {
		t.Errorf("answers to the error challenge %q, want two empty", after)
	}
	if len(txs) != 0 {
		t.Errorf("%d messages delivered without AUTH", len(txs))
	}
	if calls, inv := k.state(); calls != 2 || len(inv) != 2 || inv[0] != wrong1 || inv[1] != wrong2 {
		t.Errorf("token source called %d times, invalidated %q; want 2 and both tokens", calls, inv)
	}
	noTokenIn(t, "the log", logs.String(), wrong1, wrong2)
	for _, r := range res.Rcpts {
		noTokenIn(t, "the reply", r.Reply.Text, wrong1, wrong2)
	}
}

// Without InvalidateToken the source is asked again all the same: one that
// renews by itself may already have a new token.
func TestXOAUTH2RetryWithoutInvalidate(t *testing.T) {
	t.Parallel()
	srv, clientTLS := newXOServer(t, mailbox, "ya29.second")
	k := &tokens{list: []string{"ya29.first", "ya29.second"}}
	tr := newTransport(t, Config{Addr: srv.Addr, TLSConfig: clientTLS, Username: mailbox, AuthMechanism: AuthXOAUTH2, TokenSource: k.source})
	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {250, "2.0.0", "", ""}})
	if _, _, txs := srv.snapshot(); len(txs) != 1 {
		t.Errorf("%d messages, want 1", len(txs))
	}
}

// A token that cannot be had is every recipient's reply, not an error:
// the token endpoint's refusal (postern.Permanent, as oauthtok marks no
// consent or a wrong secret) is 5.7.0 with the provider's code and words,
// so the owner gets a DSN at once; anything else is 4.7.0 and retried,
// after the endpoint's Retry-After when it gave one. No reply names the
// mailbox or holds the token.
func TestXOAUTH2TokenSourceFails(t *testing.T) {
	t.Parallel()
	srv, clientTLS := newXOServer(t, mailbox, "ya29.good")
	noConsent := &oauthtok.Error{Provider: "entra", Status: 400, Code: "invalid_grant", ProviderCode: "AADSTS65001",
		Description: "AADSTS65001: The user or administrator has not consented to use the application with ID 'app-1'."}
	down := errors.New("oauthtok: entra token endpoint: HTTP 503")
	for name, c := range map[string]struct {
		tok    string
		err    error
		status string
		text   string
		after  time.Duration
	}{
		"no consent": {err: postern.Permanent(fmt.Errorf("wrapped: %w", noConsent)), status: "5.7.0",
			text: "no XOAUTH2 token: wrapped: oauthtok: entra token endpoint: HTTP 400 invalid_grant: AADSTS65001: The user or administrator has not consented to use the application with ID 'app-1'."},
		"down":       {err: down, status: "4.7.0", text: "no XOAUTH2 token: oauthtok: entra token endpoint: HTTP 503"},
		"throttled":  {err: postern.RetryAfter(down, 30*time.Second), status: "4.7.0", text: "HTTP 503", after: 30 * time.Second},
		"long hint":  {err: postern.RetryAfter(down, 5*time.Hour), status: "4.7.0", text: "HTTP 503", after: time.Hour},
		"multi-line": {err: errors.New("line one\r\nline two"), status: "4.7.0", text: "no XOAUTH2 token: line one line two"},
		"empty":      {status: "4.7.0", text: "no XOAUTH2 token: the source gave an empty token"},
		"crlf":       {tok: "ya29.good\r\nMAIL FROM:<x@y>", status: "4.7.0", text: "printable ASCII"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			source := func(context.Context) (string, error) { return c.tok, c.err }
			logs := &lockedBuffer{}
			tr := newTransport(t, Config{Addr: srv.Addr, TLSConfig: clientTLS, Username: mailbox, AuthMechanism: AuthXOAUTH2, TokenSource: source,
				Log: slog.New(slog.NewTextHandler(logs, nil))})
			m := message("scanner@lan.example", "a@example.com", "b@example.com")
			res := send(t, tr, m)
			w := want{0, c.status, c.text, relay.DiagLocal}
			check(t, res, map[string]want{"a@example.com": w, "b@example.com": w})
			for _, r := range res.Rcpts {
				if r.Reply.RetryAfter != c.after {
					t.Errorf("RetryAfter %v, want %v", r.Reply.RetryAfter, c.after)
				}
				if strings.Contains(r.Reply.Text, mailbox) || strings.ContainsAny(r.Reply.Text, "\r\n") ||
					(c.tok != "" && strings.Contains(r.Reply.Text, "ya29.good")) {
					t.Errorf("reply text %q names the mailbox, spans lines or holds the token", r.Reply.Text)
				}
			}
			if out := logs.String(); !strings.Contains(out, "msg_id="+string(m.ID)) || !strings.Contains(out, "status="+c.status) {
				t.Errorf("log lacks the msg_id and status:\n%s", out)
			}
		})
	}
	if irs, _, _ := srv.snapshot(); len(irs) != 0 {
		t.Errorf("AUTH attempted %d times with no usable token", len(irs))
	}
}

// The smarthost refuses the cached token and the renewal is refused by the
// token endpoint (consent revoked in between): the renewal's refusal is
// the reply, permanent.
func TestXOAUTH2RenewalRefused(t *testing.T) {
	t.Parallel()
	srv, clientTLS := newXOServer(t, mailbox, "ya29.good")
	var calls int
	var mu sync.Mutex
	source := func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return "ya29.revoked", nil
		}
		return "", postern.Permanent(errors.New("AADSTS65001: consent revoked"))
	}
	tr := newTransport(t, Config{Addr: srv.Addr, TLSConfig: clientTLS, Username: mailbox, AuthMechanism: AuthXOAUTH2, TokenSource: source})
	res := send(t, tr, message("scanner@lan.example", "a@example.com"))
	check(t, res, map[string]want{"a@example.com": {0, "5.7.0", "no XOAUTH2 token: AADSTS65001: consent revoked", relay.DiagLocal}})
	if irs, _, txs := srv.snapshot(); len(irs) != 1 || len(txs) != 0 {
		t.Errorf("AUTH %d times, %d messages; want one AUTH and none", len(irs), len(txs))
	}
}

func TestXOAUTH2ClientNext(t *testing.T) {
	a := &xoauth2Client{user: "u", token: "t"}
	if r, err := a.Next([]byte(xoChallenge)); err != nil || r == nil || len(r) != 0 {
		t.Fatalf("Next(error challenge) = %q, %v; want a non-nil empty answer", r, err)
	}
	if _, err := a.Next([]byte(xoChallenge)); err == nil {
		t.Error("a second challenge was answered")
	}
}

func TestNewRejectsXOAUTH2(t *testing.T) {
	t.Parallel()
	src := func(context.Context) (string, error) { return "t", nil }
	for name, c := range map[string]struct {
		cfg  Config
		want string
	}{
		"no user":         {Config{Addr: "smtp.office365.com:587", AuthMechanism: "XOAUTH2", TokenSource: src}, "needs username"},
		"no source":       {Config{Addr: "smtp.office365.com:587", AuthMechanism: "XOAUTH2", Username: mailbox}, "needs a token source"},
		"and a password":  {Config{Addr: "smtp.office365.com:587", AuthMechanism: "XOAUTH2", Username: mailbox, TokenSource: src, Password: "p"}, "remove the password"},
		"source, no mech": {Config{Addr: "smtp.office365.com:587", Username: mailbox, Password: "p", TokenSource: src}, "needs auth mechanism XOAUTH2"},
		"control in user": {Config{Addr: "smtp.office365.com:587", AuthMechanism: "XOAUTH2", Username: "a\x01b", TokenSource: src}, "control character"},
		"in clear":        {Config{Addr: "smtp.office365.com:25", TLS: TLSNone, AuthMechanism: "XOAUTH2", Username: mailbox, TokenSource: src}, "in clear"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, want an error with %q", name, err, c.want)
		}
	}
	tr, err := New(Config{Addr: "smtp.gmail.com:587", AuthMechanism: "xoauth2", Username: mailbox, TokenSource: src})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if tr.cfg.AuthMechanism != AuthXOAUTH2 {
		t.Errorf("mechanism %q, want XOAUTH2", tr.cfg.AuthMechanism)
	}
}
