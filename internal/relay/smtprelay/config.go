// Package smtprelay is the relay Transport for an SMTP smarthost: one
// connection per message, STARTTLS or implicit TLS, AUTH PLAIN, LOGIN or
// XOAUTH2, per-recipient replies, deadlines from the context.
package smtprelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// TLSMode says how the connection to the smarthost is secured.
type TLSMode string

const (
	// TLSStartTLS connects in plain text and requires STARTTLS (port 587).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (port 465).
	TLSImplicit TLSMode = "implicit"
	// TLSNone never encrypts: for a smarthost on a trusted network only.
	TLSNone TLSMode = "none"
)

// Defaults applied to zero Config fields.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Minute // RFC 5321 section 4.5.3.2
	DefaultDataTimeout    = 10 * time.Minute
)

// Config describes one smarthost.
type Config struct {
	// Addr is host:port, e.g. "smtp.example.com:587".
	Addr string
	// TLS is TLSStartTLS (default), TLSImplicit or TLSNone.
	TLS TLSMode
	// TLSConfig is cloned for each connection. Nil means the system roots,
	// ServerName from Addr, TLS 1.2 or later.
	TLSConfig *tls.Config

	// Username and Password enable AUTH; both empty means no AUTH.
	Username string
	Password string
	// PasswordSource, when set, gives the password at each send instead of
	// Password: a secret read at run time (Secrets Manager, through a
	// cache with a TTL), so a rotated password applies without a restart.
	// Its error fails Send as this side's fault, and the job is retried.
	PasswordSource func(ctx context.Context) (string, error)
	// AuthMechanism is "PLAIN", "LOGIN", "XOAUTH2" (AuthXOAUTH2), or ""
	// for PLAIN when offered, else LOGIN.
	AuthMechanism string
	// TokenSource gives the OAuth 2.0 access token for XOAUTH2 at each
	// send, for Username; it should cache the token and renew it before
	// expiry. Its error is every recipient's reply (Send returns no
	// error): 5.7.0 when marked postern.Permanent (no consent, a wrong
	// secret), so a DSN goes out at once with the provider's reason;
	// otherwise 4.7.0, retried, honouring postern.RetryAfter.
	TokenSource func(ctx context.Context) (string, error)
	// InvalidateToken, when set, is told of a token the smarthost refused
	// with 535, so that TokenSource's next call gives a fresh one; Send
	// then retries once on a new connection.
	InvalidateToken func(token string)
	// Log gets the transport's own events (a refused token); nil discards.
	Log *slog.Logger
	// AllowInsecureAuth permits AUTH with TLSNone. Without it New refuses
	// that combination: the password would cross the network in clear.
	AllowInsecureAuth bool

	// LocalName is the name sent in EHLO after TLS is up (and in the first
	// EHLO with TLSImplicit or TLSNone); "localhost" when empty.
	LocalName string
	// Name is the smarthost's name in DSN Remote-MTA fields; the host of
	// Addr when empty.
	Name string

	ConnectTimeout time.Duration // TCP (and TLS) set-up; DefaultConnectTimeout when zero
	CommandTimeout time.Duration // each command's reply; DefaultCommandTimeout when zero
	DataTimeout    time.Duration // the message and the reply to it; DefaultDataTimeout when zero

	// Dial replaces the TCP dialer, for tests; nil uses net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// validate fills defaults and checks the combination.
func (c *Config) validate() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("smtprelay: addr %q is not host:port", c.Addr)
	}
	if c.TLS == "" {
		c.TLS = TLSStartTLS
	}
	switch c.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("smtprelay: tls %q is not starttls, implicit or none", c.TLS)
	}
	if err := c.validateXOAUTH2(); err != nil {
		return err
	}
	// XOAUTH2 takes a token source instead of a password: checked above.
	if !strings.EqualFold(c.AuthMechanism, AuthXOAUTH2) && (c.Username == "") != (c.Password == "" && c.PasswordSource == nil) {
		return errors.New("smtprelay: set both username and password (or a password source), or neither")
	}
	switch strings.ToUpper(c.AuthMechanism) {
	case "", "PLAIN", "LOGIN", AuthXOAUTH2:
		c.AuthMechanism = strings.ToUpper(c.AuthMechanism)
	default:
		return fmt.Errorf("smtprelay: auth mechanism %q is not PLAIN, LOGIN or XOAUTH2", c.AuthMechanism)
	}
	if c.Username != "" && c.TLS == TLSNone && !c.AllowInsecureAuth {
		return errors.New("smtprelay: AUTH without TLS would send the password in clear; use starttls or implicit TLS")
	}
	if c.LocalName == "" {
		c.LocalName = "localhost"
	}
	if strings.ContainsAny(c.LocalName, " \t\r\n") {
		return fmt.Errorf("smtprelay: local name %q has white space", c.LocalName)
	}
	if c.Name == "" {
		c.Name = host
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = DefaultDataTimeout
	}
	tc := &tls.Config{}
	if c.TLSConfig != nil {
		tc = c.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	c.TLSConfig = tc
	return nil
}

// password returns the password for AUTH: PasswordSource's when set, or
// TokenSource's token for XOAUTH2.
func (t *Transport) password(ctx context.Context) (string, error) {
	if t.cfg.AuthMechanism == AuthXOAUTH2 {
		return t.token(ctx)
	}
	if t.cfg.PasswordSource == nil || t.cfg.Username == "" {
		return t.cfg.Password, nil
	}
	p, err := t.cfg.PasswordSource(ctx)
	if err != nil {
		return "", fmt.Errorf("smtprelay: password for %s: %w", t.cfg.Username, err)
	}
	if p == "" {
		return "", fmt.Errorf("smtprelay: password for %s: the source gave an empty password", t.cfg.Username)
	}
	return p, nil
}
