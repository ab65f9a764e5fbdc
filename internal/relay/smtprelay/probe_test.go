package smtprelay

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/relay/relaytest"
)

// probeServer is a go-smtp smarthost that takes only AUTH XOAUTH2 and
// answers it with refuse (nil accepts), recording the client's command
// lines as they arrive on the wire (readable with TLS off) and whether
// MAIL was ever asked for.
type probeServer struct {
	addr   string
	refuse *smtp.SMTPError

	mu     sync.Mutex
	wire   strings.Builder
	mails  int
	authed int
	tlsOn  int
}

func newProbeServer(t *testing.T, serverTLS *tls.Config, refuse *smtp.SMTPError) *probeServer {
	t.Helper()
	p := &probeServer{refuse: refuse}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &probeSession{p: p, conn: c}, nil
	}))
	srv.Domain = "smarthost.test"
	srv.TLSConfig = serverTLS
	srv.AllowInsecureAuth = serverTLS == nil
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxLineLength = 8192
	srv.ErrorLog = discardLogger{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(recordingListener{ln, p})
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return p
}

// commands are the client's lines as received (with TLS off, all of them).
func (p *probeServer) commands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Split(strings.TrimSuffix(p.wire.String(), "\r\n"), "\r\n")
}

type recordingListener struct {
	net.Listener
	p *probeServer
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, p: l.p}, nil
}

type recordingConn struct {
	net.Conn
	p *probeServer
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.p.mu.Lock()
	c.p.wire.Write(b[:n])
	c.p.mu.Unlock()
	return n, err
}

type probeSession struct {
	p    *probeServer
	conn *smtp.Conn
}

func (s *probeSession) AuthMechanisms() []string { return []string{"XOAUTH2"} }

func (s *probeSession) Auth(mech string) (sasl.Server, error) {
	return saslServer(func(resp []byte) ([]byte, bool, error) {
		if s.p.refuse != nil {
			return nil, false, s.p.refuse
		}
		s.p.mu.Lock()
		defer s.p.mu.Unlock()
		s.p.authed++
		if _, ok := s.conn.TLSConnectionState(); ok {
			s.p.tlsOn++
		}
		return nil, true, nil
	}), nil
}

func (s *probeSession) Mail(string, *smtp.MailOptions) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.mails++
	return nil
}
func (s *probeSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *probeSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (s *probeSession) Reset()                               {}
func (s *probeSession) Logout() error                        { return nil }

type saslServer func(resp []byte) ([]byte, bool, error)

func (f saslServer) Next(resp []byte) ([]byte, bool, error) { return f(resp) }

func probeTransport(t *testing.T, addr string, mode TLSMode, clientTLS *tls.Config) *Transport {
	t.Helper()
	tr, err := New(Config{
		Addr: addr, TLS: mode, TLSConfig: clientTLS, Username: "scanner@contoso.test",
		AuthMechanism: AuthXOAUTH2, AllowInsecureAuth: mode == TLSNone, LocalName: "probe.test",
		TokenSource: func(context.Context) (string, error) { return "tok", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestProbeSignsInAndQuitsWithoutMail(t *testing.T) {
	t.Parallel()
	// Plain text, so the wire shows every command the probe sends.
	p := newProbeServer(t, nil, nil)
	if err := probeTransport(t, p.addr, TLSNone, nil).Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	cmds := p.commands()
	want := []string{"EHLO probe.test", "AUTH XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte("user=scanner@contoso.test\x01auth=Bearer tok\x01\x01")), "QUIT"}
	if strings.Join(cmds, "|") != strings.Join(want, "|") {
		t.Fatalf("commands %q, want %q", cmds, want)
	}
}

func TestProbeStartTLS(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	p := newProbeServer(t, serverTLS, nil)
	if err := probeTransport(t, p.addr, TLSStartTLS, clientTLS).Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	authed, tlsOn, mails := p.authed, p.tlsOn, p.mails
	p.mu.Unlock()
	if authed != 1 || tlsOn != 1 || mails != 0 {
		t.Fatalf("authed %d, over TLS %d, MAIL %d; want 1, 1, 0", authed, tlsOn, mails)
	}
	// Implicit TLS against a server that greets in plain text fails
	// before anything is said.
	if err := probeTransport(t, p.addr, TLSImplicit, clientTLS).Probe(context.Background()); !isStep(err, ProbeConnect) {
		t.Fatalf("implicit TLS to a STARTTLS server: %v, want a connect failure", err)
	}
}

func TestProbeReportsAuthRefusal(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := relaytest.TLSConfigs(t)
	refusal := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 139},
		Message: "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information."}
	p := newProbeServer(t, serverTLS, refusal)
	err := probeTransport(t, p.addr, TLSStartTLS, clientTLS).Probe(context.Background())
	var se *smtp.SMTPError
	if !isStep(err, ProbeAuth) || !errors.As(err, &se) || se.Code != 535 || se.EnhancedCode != refusal.EnhancedCode || se.Message != refusal.Message {
		t.Fatalf("got %v, want the 535 5.7.139 reply at step auth", err)
	}
}

func TestProbeUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := probeTransport(t, addr, TLSStartTLS, nil).Probe(context.Background()); !isStep(err, ProbeConnect) {
		t.Fatalf("closed port: %v, want a connect failure", err)
	}
	// A smarthost that never offers STARTTLS is refused before AUTH: the
	// token never crosses in clear.
	p := newProbeServer(t, nil, nil)
	if err := probeTransport(t, p.addr, TLSStartTLS, nil).Probe(context.Background()); !isStep(err, ProbeConnect) {
		t.Fatalf("no STARTTLS: %v, want a connect failure", err)
	}
	for _, c := range p.commands() {
		if strings.HasPrefix(c, "AUTH") {
			t.Fatalf("AUTH sent without TLS: %q", p.commands())
		}
	}
}

func isStep(err error, step string) bool {
	var pe *ProbeError
	return errors.As(err, &pe) && pe.Step == step
}
