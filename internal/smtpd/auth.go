package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

var (
	errAuthFailed   = reply(535, smtp.EnhancedCode{5, 7, 8}, "Authentication credentials invalid")
	errAuthNeedsTLS = reply(538, smtp.EnhancedCode{5, 7, 11}, "Encryption required for requested authentication mechanism")
	errAuthMech     = reply(504, smtp.EnhancedCode{5, 5, 4}, "Unrecognized authentication mechanism")
	errAuthSyntax   = reply(501, smtp.EnhancedCode{5, 5, 2}, "Malformed authentication data")
	// errAuthInTransaction: AUTH after MAIL (RFC 4954 section 4).
	errAuthInTransaction = reply(503, smtp.EnhancedCode{5, 5, 1}, "Error: AUTH not allowed during a mail transaction")
	// errAuthLocked ends the session (RFC 5321: 421 closes the channel),
	// like Postfix past smtpd_hard_error_limit. 454 would leave the session
	// open for the next guess, and RFC 4954 keeps 454 for a temporary
	// failure of the server, which a lock-out is not.
	errAuthLocked = reply(421, smtp.EnhancedCode{4, 7, 0}, "Too many failed authentications, try again later")
	// errAuthBusy: the password could not be checked in time (RFC 4954
	// "Temporary authentication failure"); the client may try again.
	errAuthBusy = reply(454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure")
)

var _ smtp.AuthSession = (*session)(nil)

// authAllowed says whether AUTH may be tried on this connection: always
// over TLS; in clear only where some password identity that allows
// plaintext may log in from the client's address (legacy devices on a
// trusted LAN). Network identities never AUTH, so they do not make the
// gateway offer AUTH in clear.
func (s *session) authAllowed() bool {
	return s.isTLS() || s.srv.plaintextAllowed(s.ip)
}

func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.identity != nil {
		// RFC 4954 section 4: no AUTH during a mail transaction (it would
		// change who sends a message already under way).
		s.srv.cfg.Observer.Reply("AUTH", 503)
		return nil, errAuthInTransaction
	}
	if !s.authAllowed() {
		// No identity could log in here in clear: refuse before the SASL
		// exchange, so a client that waits for it never sends its password
		// in clear.
		s.srv.cfg.Observer.Reply("AUTH", 538)
		return nil, errAuthNeedsTLS
	}
	if s.srv.authFails.addrLocked(s.ip) {
		return nil, s.lockedOut(mech)
	}
	switch mech {
	case sasl.Plain:
		return saslReplies{sasl.NewPlainServer(func(authzid, user, pass string) error {
			if authzid != "" && authzid != user {
				return s.authenticate(mech, "", "")
			}
			return s.authenticate(mech, user, pass)
		})}, nil
	case sasl.Login:
		return &loginServer{auth: func(user, pass string) error { return s.authenticate(mech, user, pass) }}, nil
	}
	return nil, errAuthMech
}

// authenticate checks credentials. Failures are answered slowly (a tarpit
// that grows with the pair's recent failures) and, past the limits of
// AuthFailures, end the session; later AUTH for that username from this
// address (or any AUTH from it, past the address limit) is refused until
// the window passes.
func (s *session) authenticate(mech, user, pass string) error {
	fails := s.srv.authFails
	if fails.locked(s.ip, user) {
		return s.lockedOut(mech)
	}
	id := s.srv.identityByUser(user)
	if !s.isTLS() && (id == nil || !id.AllowPlaintext || !loginCovers(id, s.ip)) {
		// Refused before the password is checked: no bcrypt for a login that
		// cannot succeed in clear from here, and the same answer for an
		// unknown user as for one that needs TLS.
		s.srv.cfg.Observer.Reply("AUTH", 538)
		if t := s.transcribed(id); t != nil {
			s.transcript(t, "AUTH "+mech+" (credentials not logged)", 538, "encryption required")
		}
		s.log.Info("authentication refused: TLS required", slog.String("stage", "gateway"), slog.String("auth_mech", mech),
			slog.Int("smtp_code", 538))
		return errAuthNeedsTLS
	}
	ok, err := s.srv.checkPassword(s.ctx, id, pass)
	if err != nil {
		s.srv.cfg.Observer.Reply("AUTH", 454)
		s.log.Warn("authentication not checked: password checks busy", slog.String("stage", "gateway"),
			slog.String("auth_mech", mech), slog.Int("smtp_code", 454))
		return errAuthBusy
	}
	if ok && !loginCovers(id, s.ip) {
		ok = false
	}
	if !ok {
		n, locked := fails.add(s.ip, user)
		s.authFailed = true
		name := ""
		if id != nil {
			name = id.Name
		}
		s.srv.cfg.Observer.AuthFailure(name)
		s.srv.cfg.Observer.Reply("AUTH", 535)
		if t := s.transcribed(id); t != nil {
			s.transcript(t, "AUTH "+mech+" (credentials not logged)", 535, "authentication failed")
		}
		s.log.Warn("authentication failed", slog.String("stage", "gateway"), slog.String("auth_mech", mech),
			slog.Int("failures", n), slog.Bool("locked", locked), slog.Int("smtp_code", 535))
		time.Sleep(min(time.Duration(n)*s.srv.cfg.AuthTarpit, 5*s.srv.cfg.AuthTarpit))
		if locked {
			s.tc.kill()
			return errAuthLocked
		}
		return errAuthFailed
	}
	s.authID = id
	s.authMech = mech
	s.srv.cfg.Observer.Reply("AUTH", 235)
	if t := s.transcribed(id); t != nil {
		s.transcript(t, "AUTH "+mech+" (credentials not logged)", 235, "authenticated")
	}
	s.log = s.log.With(slog.String("identity", id.Name))
	s.log.Info("authenticated", slog.String("stage", "gateway"), slog.String("auth_mech", mech))
	return nil
}

// lockedOut refuses AUTH from a locked-out address or username and ends
// the session. Mail as a network identity stays possible on a new one.
func (s *session) lockedOut(mech string) error {
	s.tc.kill()
	s.srv.cfg.Observer.Reply("AUTH", 421)
	s.log.Info("authentication refused: locked out", slog.String("stage", "gateway"), slog.String("auth_mech", mech),
		slog.Int("smtp_code", 421))
	return errAuthLocked
}

// checkPassword compares pass with id's hash, or with the server's dummy
// hash when id is nil, so that an unknown user costs as much time as a
// wrong password. At most a few checks run at once (AuthFailures); one that
// waits for its turn longer than the command timeout is not made, and the
// error says so.
func (s *Server) checkPassword(ctx context.Context, id *Identity, pass string) (bool, error) {
	hash := s.dummyHash
	if id != nil {
		hash = id.PasswordHash
	}
	wait := s.cfg.CommandTimeout
	if wait <= 0 {
		wait = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := s.authFails.acquireCheck(ctx); err != nil {
		return false, fmt.Errorf("wait for a password check: %w", err)
	}
	defer s.authFails.releaseCheck()
	return bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil && id != nil, nil
}

// dummyHashFor makes the hash checked for unknown usernames: a random
// password at the highest cost among the identities' hashes, so that it
// takes as long as the slowest real check. (A hash of lower cost than the
// others still answers faster: keep all hashes at one cost.)
func dummyHashFor(identities []Identity) []byte {
	cost := bcrypt.MinCost
	for _, id := range identities {
		if c, err := bcrypt.Cost(id.PasswordHash); id.Username != "" && err == nil && c > cost {
			cost = c
		}
	}
	pw := make([]byte, 32)
	rand.Read(pw)
	h, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		// Only a cost out of range or a password over 72 bytes fails, and
		// neither can happen here.
		panic(fmt.Sprintf("smtpd: dummy bcrypt hash: %v", err))
	}
	return h
}

// loginCovers reports whether a password identity may log in from ip: its
// networks contain ip, or it names none (then it may be used from anywhere).
func loginCovers(id *Identity, ip netip.Addr) bool {
	return len(id.Networks) == 0 || containsIP(id.Networks, ip)
}

// saslReplies makes a SASL server's own errors (a malformed PLAIN
// response) the RFC 4954 reply for undecodable data; go-smtp would send
// their text with 454.
type saslReplies struct{ sasl.Server }

func (r saslReplies) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := r.Server.Next(resp)
	if err != nil {
		if _, ok := err.(*smtp.SMTPError); !ok {
			err = errAuthSyntax
		}
	}
	return ch, done, err
}

func containsIP(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// loginServer is the server side of the AUTH LOGIN mechanism
// (draft-murchison-sasl-login): "Username:" then "Password:" challenges,
// with the username optionally given as the initial response. go-sasl no
// longer ships a LOGIN server.
type loginServer struct {
	auth     func(user, pass string) error
	user     string
	gotUser  bool
	finished bool
}

func (l *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch {
	case l.finished:
		return nil, true, errAuthSyntax
	case !l.gotUser:
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		l.user, l.gotUser = string(resp), true
		return []byte("Password:"), false, nil
	}
	l.finished = true
	if err := l.auth(l.user, string(resp)); err != nil {
		return nil, true, err
	}
	return nil, true, nil
}

// equalUser compares usernames in constant time.
func equalUser(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
