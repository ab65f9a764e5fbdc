package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// Sessions are the console's logins, kept in memory only: a restart, like a
// new admin token, logs every browser out. A session id travels only in an
// HttpOnly cookie; its CSRF token is handed to the page's script, which
// sends it back in a header with every state-changing call (a synchronizer
// token: a page of another origin can make the browser send the cookie but
// cannot read the token).
type Sessions struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	// Guarded by mu: by maps the SHA-256 of a session id (so that the map
	// never holds a usable id) to the session. Every entry was created less
	// than ttl before its expires; entries past expires are never admitted
	// and are dropped by the next create. len(by) <= max: create drops the
	// entry that expires first to stay there.
	by map[[32]byte]session
}

type session struct {
	csrf    string
	expires time.Time
}

// NewSessions keeps up to max sessions, each valid for ttl after login.
func NewSessions(ttl time.Duration, max int) *Sessions {
	return &Sessions{ttl: ttl, max: max, now: time.Now, by: map[[32]byte]session{}}
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Create starts a session and returns its id (for the cookie), its CSRF
// token and when it expires.
func (s *Sessions) Create() (id, csrf string, expires time.Time) {
	id, csrf = randomToken(), randomToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	expires = now.Add(s.ttl)
	for k, v := range s.by {
		if !now.Before(v.expires) {
			delete(s.by, k)
		}
	}
	for len(s.by) >= s.max {
		var oldest [32]byte
		first := true
		for k, v := range s.by {
			if first || v.expires.Before(s.by[oldest].expires) {
				oldest, first = k, false
			}
		}
		delete(s.by, oldest)
	}
	s.by[sha256.Sum256([]byte(id))] = session{csrf: csrf, expires: expires}
	return id, csrf, expires
}

// Lookup returns the CSRF token and expiry of a live session.
func (s *Sessions) Lookup(id string) (csrf string, expires time.Time, ok bool) {
	if id == "" {
		return "", time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.by[sha256.Sum256([]byte(id))]
	if !ok || !s.now().Before(v.expires) {
		return "", time.Time{}, false
	}
	return v.csrf, v.expires, true
}

// CSRFOK reports whether got is the CSRF token of the live session id.
func (s *Sessions) CSRFOK(id, got string) bool {
	csrf, _, ok := s.Lookup(id)
	return ok && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(csrf)) == 1
}

// Delete ends a session (logout).
func (s *Sessions) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.by, sha256.Sum256([]byte(id)))
}
