package smtprelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postern/postern/internal/postern"
	"github.com/postern/postern/internal/relay"
)

// AuthXOAUTH2 is the AuthMechanism for OAuth 2.0 bearer tokens, as
// smtp.office365.com:587 and smtp.gmail.com:587 take them. Username is the
// mailbox the token is for; TokenSource gives the token.
const AuthXOAUTH2 = "XOAUTH2"

// validateXOAUTH2 checks the fields that go with AuthXOAUTH2; it runs
// before the password checks, which do not apply to it.
func (c *Config) validateXOAUTH2() error {
	if !strings.EqualFold(c.AuthMechanism, AuthXOAUTH2) {
		if c.TokenSource != nil || c.InvalidateToken != nil {
			return errors.New("smtprelay: a token source needs auth mechanism XOAUTH2")
		}
		return nil
	}
	switch {
	case c.Username == "":
		return errors.New("smtprelay: auth mechanism XOAUTH2 needs username, the mailbox the token is for")
	case strings.ContainsAny(c.Username, "\x01\r\n"):
		return fmt.Errorf("smtprelay: username %q has a control character", c.Username)
	case c.TokenSource == nil:
		return errors.New("smtprelay: auth mechanism XOAUTH2 needs a token source")
	case c.Password != "" || c.PasswordSource != nil:
		return errors.New("smtprelay: auth mechanism XOAUTH2 takes a token source, not a password; remove the password")
	}
	return nil
}

// maxTokenRetryAfter caps a token endpoint's Retry-After, so a typo
// cannot park mail.
const maxTokenRetryAfter = time.Hour

// tokenError is a failure to get a usable token. Send reports it as every
// recipient's reply, as the API transports do: a refusal by the token
// endpoint (no consent, an unknown app, a wrong secret: postern.Permanent)
// reaches the owner by DSN at once with the provider's code and words,
// which no retry would change; any other (the endpoint down or throttling,
// an empty token) is retried until the route's max age.
type tokenError struct {
	user string
	err  error // the source's error, or what was wrong with its token
}

func (e *tokenError) Error() string {
	return "smtprelay: oauth token for " + e.user + ": " + e.err.Error()
}
func (e *tokenError) Unwrap() error { return e.err }

// token returns a bearer token from TokenSource; its error is a
// *tokenError. The token itself never appears in an error or a log line.
func (t *Transport) token(ctx context.Context) (string, error) {
	tok, err := t.cfg.TokenSource(ctx)
	if err != nil {
		return "", &tokenError{t.cfg.Username, err}
	}
	if tok == "" {
		return "", &tokenError{t.cfg.Username, errors.New("the source gave an empty token")}
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", &tokenError{t.cfg.Username, errors.New("the source gave a token with a character outside printable ASCII")}
	}
	return tok, nil
}

// tokenReply is the reply for a *tokenError in err, with the source's own
// words (an oauthtok error names the provider's code, e.g. AADSTS65001,
// and its message, never the secret) but not the mailbox; false for any
// other error.
func (t *Transport) tokenReply(ctx context.Context, m *relay.Message, err error) (relay.Reply, bool) {
	var te *tokenError
	if !errors.As(err, &te) {
		return relay.Reply{}, false
	}
	text := "no XOAUTH2 token: " + strings.Join(strings.Fields(te.err.Error()), " ")
	if len(text) > 900 {
		text = text[:900]
	}
	r := relay.LocalReply("4.7.0", text)
	if postern.IsPermanent(te.err) {
		r.Status = "5.7.0"
	} else if d, ok := postern.RetryDelay(te.err); ok {
		r.RetryAfter = min(d, maxTokenRetryAfter)
	}
	t.log().LogAttrs(ctx, slog.LevelWarn, "no oauth token for the smarthost",
		slog.String("msg_id", string(m.ID)), slog.String("remote", t.cfg.Name), slog.String("user", t.cfg.Username),
		slog.String("status", r.Status), slog.String("error", text))
	return r, true
}

// tokenRefused says whether err is the smarthost refusing an XOAUTH2
// token with 535: expired, revoked, or never valid.
func (t *Transport) tokenRefused(err error) bool {
	if t.cfg.AuthMechanism != AuthXOAUTH2 {
		return false
	}
	var ae *authError
	var se *smtp.SMTPError
	return errors.As(err, &ae) && errors.As(ae.err, &se) && se.Code == 535
}

// refreshToken drops a refused token and gets another. A cached token
// may have expired or been revoked before its stated expiry (an admin
// revoking consent, a password reset), so one retry with a fresh token is
// worth a new connection; a second refusal is reported as it is.
func (t *Transport) refreshToken(ctx context.Context, m *relay.Message, refused string, why error) (string, error) {
	t.invalidate(refused)
	reply := "smarthost refused AUTH"
	if se := (*smtp.SMTPError)(nil); errors.As(why, &se) {
		// The provider's own words (535 5.7.3, 5.7.139, 5.7.8): they say
		// which grant is missing and never carry the token.
		reply = fromSMTP(se).Diagnostic()
	}
	t.log().LogAttrs(ctx, slog.LevelWarn, "smarthost refused the oauth token; retrying with a fresh one",
		slog.String("msg_id", string(m.ID)), slog.String("remote", t.cfg.Name),
		slog.String("user", t.cfg.Username), slog.String("reply", reply))
	return t.token(ctx)
}

func (t *Transport) invalidate(tok string) {
	if t.cfg.InvalidateToken != nil {
		t.cfg.InvalidateToken(tok)
	}
}

func (t *Transport) log() *slog.Logger {
	if t.cfg.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.cfg.Log
}
