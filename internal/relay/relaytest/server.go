// Package relaytest has stand-ins for testing relay transports and the
// stages that use them: a real SMTP server on loopback that answers each
// recipient as scripted and records every transaction, TLS certificates for
// it, an in-memory store and a recording queue.
package relaytest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Script says how the server answers. Nil replies accept.
type Script struct {
	// Rcpt answers RCPT per address (as the client sent it).
	Rcpt map[string]*smtp.SMTPError
	Mail *smtp.SMTPError // answers every MAIL
	Data *smtp.SMTPError // answers the end of every DATA
	// Users enables AUTH PLAIN and LOGIN with these user/password pairs;
	// with RequireAuth, MAIL before AUTH is refused 530.
	Users       map[string]string
	RequireAuth bool
}

// Options configure a Server.
type Options struct {
	Script
	// TLS enables STARTTLS with this config; with Implicit the listener
	// speaks TLS from the first byte instead.
	TLS      *tls.Config
	Implicit bool
	SMTPUTF8 bool // advertise SMTPUTF8
	DSN      bool // advertise DSN
	// AllowInsecureAuth offers AUTH without TLS.
	AllowInsecureAuth bool
	MaxMessageBytes   int64
	// StrictLineEnds refuses, 554 5.6.0, any DATA with a bare CR or a
	// bare LF, as RFC 5321 section 2.3.8 allows a server to.
	StrictLineEnds bool
}

// Tx is one completed (DATA accepted) transaction.
type Tx struct {
	From     string
	MailOpts smtp.MailOptions
	Rcpts    []string
	RcptOpts []smtp.RcptOptions
	Data     []byte
	TLS      bool   // the session was encrypted
	AuthUser string // "" when the session did not authenticate
	AuthMech string
}

// Server is a go-smtp server on 127.0.0.1 that records transactions.
type Server struct {
	Addr string // host:port

	strict bool // Options.StrictLineEnds; set before serving

	mu     sync.Mutex
	script Script
	txs    []Tx
	rcpts  int // RCPT commands seen, accepted or not
}

// NewServer starts a server on 127.0.0.1:0, stopped by t.Cleanup.
func NewServer(t testing.TB, o Options) *Server {
	t.Helper()
	s := &Server{script: o.Script, strict: o.StrictLineEnds}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, conn: c}, nil
	}))
	srv.Domain = "mx.relaytest"
	srv.AllowInsecureAuth = o.AllowInsecureAuth
	srv.EnableSMTPUTF8 = o.SMTPUTF8
	srv.EnableDSN = o.DSN
	srv.MaxMessageBytes = o.MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	logger := &testLogger{t: t}
	srv.ErrorLog = logger
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relaytest: listen: %v", err)
	}
	if o.TLS != nil {
		if o.Implicit {
			ln = tls.NewListener(ln, o.TLS)
		} else {
			srv.TLSConfig = o.TLS
		}
	}
	s.Addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		// Close misses a listener Serve has not registered yet.
		ln.Close()
		<-done
		// A connection's goroutine may still log its end after Close;
		// logging through t once the test has ended is a race.
		logger.stop()
	})
	return s
}

// SetScript replaces the answers for later commands.
func (s *Server) SetScript(sc Script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = sc
}

// Txs returns the completed transactions so far.
func (s *Server) Txs() []Tx {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Tx(nil), s.txs...)
}

// RcptCount returns how many RCPT commands the server has seen.
func (s *Server) RcptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts
}

func (s *Server) scriptNow() Script {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.script
}

type session struct {
	srv  *Server
	conn *smtp.Conn
	tx   Tx
	user string
	mech string
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string {
	if s.srv.scriptNow().Users == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	users := s.srv.scriptNow().Users
	check := func(user, pass string) error {
		if want, ok := users[user]; !ok || want != pass {
			return smtp.ErrAuthFailed
		}
		s.user, s.mech = user, mech
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return smtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	sc := s.srv.scriptNow()
	if sc.RequireAuth && s.user == "" {
		return smtp.ErrAuthRequired
	}
	if sc.Mail != nil {
		return sc.Mail
	}
	s.tx = Tx{From: from}
	if opts != nil {
		s.tx.MailOpts = *opts
	}
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	s.srv.rcpts++
	s.srv.mu.Unlock()
	if e := s.srv.scriptNow().Rcpt[to]; e != nil {
		return e
	}
	s.tx.Rcpts = append(s.tx.Rcpts, to)
	var o smtp.RcptOptions
	if opts != nil {
		o = *opts
	}
	s.tx.RcptOpts = append(s.tx.RcptOpts, o)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.srv.strict && HasBareLineEnd(b) {
		return ErrBareLineEnd
	}
	if e := s.srv.scriptNow().Data; e != nil {
		return e
	}
	tx := s.tx
	tx.Data = bytes.Clone(b)
	_, tx.TLS = s.conn.TLSConnectionState()
	tx.AuthUser, tx.AuthMech = s.user, s.mech
	s.srv.mu.Lock()
	s.srv.txs = append(s.srv.txs, tx)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.tx = Tx{} }
func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl no longer has.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch {
	case l.step == 1 && resp == nil:
		return []byte("Username:"), false, nil
	case l.step == 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case l.step == 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	case l.step == 3:
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, false, errors.New("unexpected AUTH LOGIN response")
}

// testLogger sends go-smtp's log lines to the test's log until stop.
type testLogger struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (l *testLogger) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("relaytest smtp: "+format, v...)
	}
}

func (l *testLogger) Println(v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Log(append([]any{"relaytest smtp:"}, v...)...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// Lines splits data on CRLF, for assertions on what the server received.
func Lines(data []byte) []string { return strings.Split(string(data), "\r\n") }

// ErrBareLineEnd is a StrictLineEnds server's answer to a message with a
// bare CR or LF.
var ErrBareLineEnd = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "bare CR or LF in message"}

// HasBareLineEnd reports whether data holds a CR not followed by LF or an
// LF not preceded by CR.
func HasBareLineEnd(data []byte) bool {
	for i, c := range data {
		switch {
		case c == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			return true
		case c == '\n' && (i == 0 || data[i-1] != '\r'):
			return true
		}
	}
	return false
}
