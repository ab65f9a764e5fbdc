package probe

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smarthost is a go-smtp server on loopback that behaves as
// smtp.office365.com:587 and smtp.gmail.com:587 do for OAuth: STARTTLS,
// then only AUTH XOAUTH2; a token check refuses with the error challenge
// and then the reply refuse gives, as the providers word it. It counts
// MAIL commands: a probe must send none.
type smarthost struct {
	addr string
	user string
	// check says whether a token is good for user; refusal is what a bad
	// one (or any, when refuseAll) draws after the challenge.
	check     func(token string) bool
	refusal   *smtp.SMTPError
	challenge string

	mu     sync.Mutex
	mails  int
	authed int
}

func newSmarthost(t *testing.T, serverTLS *tls.Config, user string, check func(string) bool, refusal *smtp.SMTPError, challenge string) *smarthost {
	t.Helper()
	h := &smarthost{user: user, check: check, refusal: refusal, challenge: challenge}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &hostSession{h: h, conn: c}, nil
	}))
	srv.Domain = "smarthost.test"
	srv.TLSConfig = serverTLS
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxLineLength = 8192 // a JWT in base64 on the AUTH line
	srv.ErrorLog = quiet{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return h
}

func (h *smarthost) counts() (authed, mails int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.authed, h.mails
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
func (quiet) Println(...any)        {}

type hostSession struct {
	h    *smarthost
	conn *smtp.Conn
}

func (s *hostSession) AuthMechanisms() []string { return []string{"XOAUTH2"} }

func (s *hostSession) Auth(mech string) (sasl.Server, error) {
	if mech != "XOAUTH2" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	challenged := false
	return saslFunc(func(resp []byte) ([]byte, bool, error) {
		if challenged {
			return nil, false, s.h.refusal
		}
		if resp == nil {
			// A long token goes after an empty challenge, not on the AUTH line.
			return []byte{}, false, nil
		}
		rest, ok := strings.CutPrefix(string(resp), "user="+s.h.user+"\x01auth=Bearer ")
		tok, ok2 := strings.CutSuffix(rest, "\x01\x01")
		_, isTLS := s.conn.TLSConnectionState()
		if ok && ok2 && isTLS && s.h.check(tok) {
			s.h.mu.Lock()
			s.h.authed++
			s.h.mu.Unlock()
			return nil, true, nil
		}
		challenged = true
		return []byte(s.h.challenge), false, nil
	}), nil
}

func (s *hostSession) Mail(string, *smtp.MailOptions) error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.mails++
	return nil
}
func (s *hostSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *hostSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (s *hostSession) Reset()                               {}
func (s *hostSession) Logout() error                        { return nil }

type saslFunc func(resp []byte) ([]byte, bool, error)

func (f saslFunc) Next(resp []byte) ([]byte, bool, error) { return f(resp) }
