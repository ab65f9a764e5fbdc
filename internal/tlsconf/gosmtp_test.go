package tlsconf

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// refuseSession answers every transaction with a temporary failure; the
// wiring test only needs the conversation up to MAIL.
type refuseSession struct{}

var _ smtp.Session = refuseSession{}

var errRefused = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "test server"}

func (refuseSession) Reset()                               {}
func (refuseSession) Logout() error                        { return nil }
func (refuseSession) Mail(string, *smtp.MailOptions) error { return errRefused }
func (refuseSession) Rcpt(string, *smtp.RcptOptions) error { return errRefused }
func (refuseSession) Data(io.Reader) error                 { return errRefused }

// serveSMTP runs a go-smtp server with cfg as its TLSConfig on ln.
func serveSMTP(t *testing.T, ln net.Listener, cfg *tls.Config) {
	t.Helper()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return refuseSession{}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.TLSConfig = cfg
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
}

// TestGoSMTPWiring shows the two ways the gateway uses a Manager: STARTTLS
// through smtp.Server.TLSConfig, and implicit TLS through tls.NewListener.
func TestGoSMTPWiring(t *testing.T) {
	t.Parallel()
	m, err := New(Options{Hostname: "gw.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Config("")
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, c *smtp.Client) {
		t.Helper()
		// The client handshakes lazily, on the first command after STARTTLS.
		var se *smtp.SMTPError
		if err := c.Mail("dev@example.test", nil); !errors.As(err, &se) || se.Code != 451 {
			t.Fatalf("MAIL over TLS: %v, want the session's 451", err)
		}
		st, ok := c.TLSConnectionState()
		if !ok || !st.HandshakeComplete {
			t.Fatal("connection is not TLS")
		}
		if st.PeerCertificates[0].SerialNumber.Cmp(m.Leaf().SerialNumber) != 0 {
			t.Error("served a different certificate")
		}
		_ = c.Quit()
	}

	t.Run("starttls", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveSMTP(t, ln, cfg)
		c, err := smtp.DialStartTLS(ln.Addr().String(), trusting(m.Leaf(), "localhost"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(t, c)
	})
	t.Run("implicit", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveSMTP(t, tls.NewListener(ln, cfg), cfg)
		c, err := smtp.DialTLS(ln.Addr().String(), trusting(m.Leaf(), "gw.example.test"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(t, c)
	})
}
