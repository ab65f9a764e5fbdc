package smtpd

import (
	"crypto/subtle"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

var (
	errAuthFailed   = reply(535, smtp.EnhancedCode{5, 7, 8}, "Authentication credentials invalid")
	errAuthNeedsTLS = reply(538, smtp.EnhancedCode{5, 7, 11}, "Encryption required for requested authentication mechanism")
	errAuthMech     = reply(504, smtp.EnhancedCode{5, 5, 4}, "Unrecognized authentication mechanism")
	errAuthLocked   = reply(421, smtp.EnhancedCode{4, 7, 0}, "Too many failed authentications, try again later")
	errAuthSyntax   = reply(501, smtp.EnhancedCode{5, 5, 2}, "Malformed authentication data")
)

// dummyHash is compared against when the username is unknown, so a probe
// cannot tell unknown users from wrong passwords by timing.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("postern-dummy-password"), bcrypt.MinCost+4)

var _ smtp.AuthSession = (*session)(nil)

// authAllowed: AUTH is offered only over TLS, unless the client's network
// belongs to an identity allowed plaintext (legacy devices on a trusted LAN).
func (s *session) authAllowed() bool {
	if _, ok := s.conn.TLSConnectionState(); ok {
		return true
	}
	return s.srv.plaintextAllowed(s.ip)
}

func (s *session) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if !s.authAllowed() {
		return nil, errAuthNeedsTLS
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(authzid, user, pass string) error {
			if authzid != "" && authzid != user {
				return s.authenticate(mech, "", "")
			}
			return s.authenticate(mech, user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{auth: func(user, pass string) error { return s.authenticate(mech, user, pass) }}, nil
	}
	return nil, errAuthMech
}

// authenticate checks credentials. Failures are answered slowly (a tarpit
// that grows with the client's recent failures) and, past the limit, end the
// session and lock the IP out for the window.
func (s *session) authenticate(mech, user, pass string) error {
	fails := s.srv.authFails
	if fails.locked(s.ip) {
		s.tc.kill()
		return errAuthLocked
	}
	id := s.srv.identityByUser(user)
	hash := dummyHash
	if id != nil {
		hash = id.PasswordHash
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil && id != nil
	if ok && len(id.Networks) > 0 && !containsIP(id.Networks, s.ip) {
		ok = false
	}
	if !ok {
		n := fails.add(s.ip)
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
			slog.Int("failures", n), slog.Int("smtp_code", 535))
		time.Sleep(min(time.Duration(n)*s.srv.cfg.AuthTarpit, 5*s.srv.cfg.AuthTarpit))
		if n >= s.srv.cfg.MaxAuthFailures {
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

// AuthFailures counts failed AUTH per client IP within a window. One is
// shared by every listener, so a client cannot spread its guesses.
type AuthFailures struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	now    func() time.Time
	byIP   map[netip.Addr]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

// NewAuthFailures locks an IP out after max failures within window.
func NewAuthFailures(max int, window time.Duration) *AuthFailures {
	return &AuthFailures{max: max, window: window, now: time.Now, byIP: map[netip.Addr]*failWindow{}}
}

func (a *AuthFailures) add(ip netip.Addr) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	w := a.byIP[ip]
	if w == nil || now.Sub(w.start) > a.window {
		w = &failWindow{start: now}
		a.byIP[ip] = w
	}
	w.n++
	// Forget stale entries now and then so the map stays bounded by the
	// number of recently failing IPs.
	if len(a.byIP) > 10000 {
		for k, v := range a.byIP {
			if now.Sub(v.start) > a.window {
				delete(a.byIP, k)
			}
		}
	}
	return w.n
}

func (a *AuthFailures) locked(ip netip.Addr) bool {
	if a.max <= 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.byIP[ip]
	return w != nil && w.n >= a.max && a.now().Sub(w.start) <= a.window
}

// equalUser compares usernames in constant time.
func equalUser(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
