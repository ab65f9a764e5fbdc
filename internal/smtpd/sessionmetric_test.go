package smtpd

import (
	"crypto/tls"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sessionObserver reports each ended session.
type sessionObserver struct {
	noObserver
	ended chan sessionEnd
}

type sessionEnd struct {
	listener string
	tls      bool
	auth     string
}

func (o sessionObserver) SessionEnd(listener string, tls bool, auth string) {
	o.ended <- sessionEnd{listener, tls, auth}
}

// nextEnd waits for the next ended session, or fails the test.
func (o sessionObserver) nextEnd(t *testing.T) sessionEnd {
	t.Helper()
	select {
	case e := <-o.ended:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no session end reported")
		return sessionEnd{}
	}
}

// postern_smtp_sessions_total is what operators use to find devices still
// sending in plaintext, so a connection that starts TLS must count once, as
// TLS. go-smtp v0.26 ends a session (Logout) at its own STARTTLS and starts
// another on the same connection; here the front door runs STARTTLS below
// go-smtp, so go-smtp keeps one session per connection and its Logout comes
// only when the connection closes.
func TestSessionCountedOncePerConnectionWithFinalTLS(t *testing.T) {
	t.Parallel()
	obs := sessionObserver{ended: make(chan sessionEnd, 16)}
	ids := append(authIdentities(t), Identity{Name: "lan", Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, AllowPlaintext: true})
	addr, _ := startWith(t, ids, &fakeIngest{}, func(c *Config) { c.Observer = obs })

	send := func(c *smtp.Client) {
		t.Helper()
		if err := c.SendMail("erp@example.com", []string{"app@example.com"}, strings.NewReader("Subject: hi\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
		if err := c.Quit(); err != nil {
			t.Fatal(err)
		}
	}

	// STARTTLS, AUTH, a message: one session, over TLS, authenticated.
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "erp", "s3cret")); err != nil {
		t.Fatal(err)
	}
	send(c)
	if got, want := obs.nextEnd(t), (sessionEnd{"smtp", true, "success"}); got != want {
		t.Fatalf("STARTTLS session ended as %+v, want %+v", got, want)
	}

	// Plaintext, by network: one session, not TLS.
	c, err = smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	send(c)
	if got, want := obs.nextEnd(t), (sessionEnd{"smtp", false, "none"}); got != want {
		t.Fatalf("plaintext session ended as %+v, want %+v", got, want)
	}

	// Greeting again, STARTTLS and a client that just hangs up: still one
	// session, ended over TLS.
	d := dial(t, addr)
	d.must("EHLO scanner", "250")
	d.must("EHLO scanner", "250")
	d.starttls(t)
	d.must("EHLO scanner", "250")
	d.must("RSET", "250")
	d.c.Close()
	if got, want := obs.nextEnd(t), (sessionEnd{"smtp", true, "none"}); got != want {
		t.Fatalf("hung-up STARTTLS session ended as %+v, want %+v", got, want)
	}

	// Each end above was the next one reported, so no connection counted
	// twice before it; a last plaintext session shows none did after.
	d = dial(t, addr)
	d.must("EHLO scanner", "250")
	d.must("QUIT", "221")
	if got, want := obs.nextEnd(t), (sessionEnd{"smtp", false, "none"}); got != want {
		t.Fatalf("a connection was counted twice: got %+v, want the last session %+v", got, want)
	}
}
