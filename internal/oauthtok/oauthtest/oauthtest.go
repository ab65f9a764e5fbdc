// Package oauthtest is the plumbing loopback stand-ins of token endpoints
// and of the APIs that take their tokens share: the record of requests and
// the queue of scripted failures (Script), and the tokens an endpoint
// issued, checked by expiry against a settable clock (Tokens). Stand-ins
// embed them through an unexported alias, so their methods are the
// stand-in's own.
package oauthtest

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// Script records the requests a stand-in received and answers the next
// ones with queued failures. Its zero value is ready.
type Script[R, F any] struct {
	mu       sync.Mutex
	next     []F
	requests []R
}

// FailNext queues failures answered, in order, to the next requests.
func (s *Script[R, F]) FailNext(f ...F) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = append(s.next, f...)
}

// Requests returns a copy of the requests received so far.
func (s *Script[R, F]) Requests() []R {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]R(nil), s.requests...)
}

// Record keeps r and returns the failure queued for it, if any.
func (s *Script[R, F]) Record(r R) (F, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	var f F
	if len(s.next) == 0 {
		return f, false
	}
	f, s.next = s.next[0], s.next[1:]
	return f, true
}

// Tokens is what a token endpoint issued: random bearer tokens valid for
// the lifetime SetLifetime sets, until revoked. I describes a token. Its
// zero value is ready, with the system clock.
type Tokens[I any] struct {
	mu       sync.Mutex
	now      func() time.Time
	lifetime time.Duration
	tokens   map[string]issued[I]
}

type issued[I any] struct {
	info   I
	expiry time.Time
}

// SetLifetime sets expires_in of the tokens issued from now on.
func (t *Tokens[I]) SetLifetime(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lifetime = d
}

// SetClock replaces the clock that Valid checks expiry against.
func (t *Tokens[I]) SetClock(now func() time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.now = now
}

// Now is the time on the stand-in's clock.
func (t *Tokens[I]) Now() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.clock()
}

func (t *Tokens[I]) clock() time.Time {
	if t.now == nil {
		return time.Now()
	}
	return t.now()
}

// Issue makes a token of n random bytes after prefix, valid for the
// lifetime; info gets its expiry to describe it.
func (t *Tokens[I]) Issue(prefix string, n int, info func(expiry time.Time) I) (tok string, lifetime time.Duration) {
	b := make([]byte, n)
	rand.Read(b)
	tok = prefix + base64.RawURLEncoding.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	lifetime = t.lifetime
	exp := t.clock().Add(lifetime)
	if t.tokens == nil {
		t.tokens = map[string]issued[I]{}
	}
	t.tokens[tok] = issued[I]{info: info(exp), expiry: exp}
	return tok, lifetime
}

// Valid reports whether token was issued here, is not revoked and has not expired.
func (t *Tokens[I]) Valid(token string) bool {
	_, ok := t.Lookup(token)
	return ok
}

// Lookup returns what a valid token was issued for.
func (t *Tokens[I]) Lookup(token string) (I, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	is, ok := t.tokens[token]
	if !ok || !t.clock().Before(is.expiry) {
		var zero I
		return zero, false
	}
	return is.info, true
}

// Revoke makes token invalid, as when the provider ends a session early.
func (t *Tokens[I]) Revoke(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.tokens, token)
}
