package oauthtok

import (
	"context"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// fetchTimeout bounds one fetch; it runs detached from the caller that
// started it, because other callers wait on the same fetch.
const fetchTimeout = 30 * time.Second

// Cache holds one access token per Key and renews it before it expires, with
// at most one fetch in flight per Key. The zero value is not usable; call
// NewCache.
type Cache struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[Key]*entry
}

type entry struct {
	tok      *oauth2.Token // nil until the first fetch succeeds
	renewAt  time.Time
	inflight *call
}

type call struct {
	done chan struct{}
	tok  *oauth2.Token
	err  error
}

// Option configures a Cache.
type Option func(*Cache)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(c *Cache) { c.now = now } }

// NewCache returns an empty cache.
func NewCache(opts ...Option) *Cache {
	c := &Cache{now: time.Now, entries: map[Key]*entry{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// renewBefore is how long before expiry a token is renewed: 5 minutes, or a
// tenth of its lifetime when that is shorter, so a short-lived token is not
// renewed on every call.
func renewBefore(lifetime time.Duration) time.Duration {
	return min(5*time.Minute, lifetime/10)
}

// Token returns a valid access token for f.Key(), fetching one when none is
// cached or the cached one is due for renewal. Concurrent callers for the
// same key share one fetch. If a renewal fails while the cached token is
// still valid, the cached token is returned.
func (c *Cache) Token(ctx context.Context, f Fetcher) (*oauth2.Token, error) {
	k := f.Key()
	c.mu.Lock()
	e := c.entries[k]
	if e == nil {
		e = &entry{}
		c.entries[k] = e
	}
	now := c.now()
	if e.tok != nil && now.Before(e.renewAt) {
		tok := e.tok
		c.mu.Unlock()
		return tok, nil
	}
	cl := e.inflight
	if cl == nil {
		cl = &call{done: make(chan struct{})}
		e.inflight = cl
		go c.fetch(context.WithoutCancel(ctx), k, e, cl, f)
	}
	c.mu.Unlock()

	select {
	case <-cl.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if cl.err != nil {
		c.mu.Lock()
		stale := e.tok
		valid := stale != nil && c.now().Before(stale.Expiry)
		c.mu.Unlock()
		if valid {
			return stale, nil
		}
		return nil, cl.err
	}
	return cl.tok, nil
}

func (c *Cache) fetch(ctx context.Context, k Key, e *entry, cl *call, f Fetcher) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	start := c.now()
	tok, err := f.Fetch(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		// Expiry on the cache's clock, from the wire's expires_in when
		// present, so a fake clock in tests and skewed hosts agree.
		lifetime := time.Duration(tok.ExpiresIn) * time.Second
		if tok.ExpiresIn <= 0 {
			lifetime = tok.Expiry.Sub(time.Now())
		}
		t := *tok
		t.Expiry = start.Add(lifetime)
		tok = &t
		e.tok, e.renewAt = tok, t.Expiry.Add(-renewBefore(lifetime))
	}
	cl.tok, cl.err = tok, err
	e.inflight = nil
	close(cl.done)
}

// Invalidate drops the cached token for k if it is still accessToken, so a
// caller whose token was refused (HTTP 401) renews once, and a burst of such
// callers holding the same token causes one renewal, not one each.
func (c *Cache) Invalidate(k Key, accessToken string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[k]; e != nil && e.tok != nil && e.tok.AccessToken == accessToken {
		e.tok = nil
	}
}
