package dnsresolve

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// answer is what one question got: the records of the asked type (possibly
// reached through CNAMEs), or none with a reason. Once built it is never
// changed, so the cache and concurrent callers share it.
type answer struct {
	nxdomain bool     // the name does not exist
	rrs      []dns.RR // records of the asked type; empty with !nxdomain is NODATA
	ttl      time.Duration
	expires  time.Time // set when cached
}

// newAnswer keeps the records of the asked type and how long they may be
// kept: the smallest TTL of the answer section for data, the SOA's for
// NXDOMAIN and NODATA (RFC 2308 section 5); no SOA, no negative caching.
func (r *Resolver) newAnswer(resp *dns.Msg, qtype uint16) *answer {
	a := &answer{nxdomain: resp.Rcode == dns.RcodeNameError}
	var ttl uint32
	first := true
	for _, rr := range resp.Answer {
		if first || rr.Header().Ttl < ttl {
			ttl, first = rr.Header().Ttl, false
		}
		if rr.Header().Rrtype == qtype && !a.nxdomain {
			a.rrs = append(a.rrs, rr)
		}
	}
	if len(a.rrs) > 0 {
		a.ttl = min(time.Duration(ttl)*time.Second, r.maxTTL)
		return a
	}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			neg := min(soa.Hdr.Ttl, soa.Minttl)
			a.ttl = min(time.Duration(neg)*time.Second, r.maxNegTTL)
			break
		}
	}
	return a
}

// result is the answer as the Lookup methods return it.
func (a *answer) result(name string) ([]dns.RR, error) {
	if len(a.rrs) == 0 {
		return nil, notFound(name)
	}
	return a.rrs, nil
}

type cacheKey struct {
	name  string // canonical: lower case, fully qualified
	qtype uint16
}

type cacheEntry struct {
	key cacheKey
	ans *answer
}

// cache is a least-recently-used map of answers.
type cache struct {
	max int

	// mu guards lru and items. Invariant: every element of lru holds a
	// *cacheEntry whose key maps to that same element in items, and
	// len(items) == lru.Len() <= max. The front is the most recently used.
	mu    sync.Mutex
	lru   *list.List
	items map[cacheKey]*list.Element
}

func newCache(max int) *cache {
	return &cache{max: max, lru: list.New(), items: make(map[cacheKey]*list.Element)}
}

func (c *cache) get(k cacheKey, now time.Time) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.ans.expires) {
		c.lru.Remove(el)
		delete(c.items, k)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.ans, true
}

func (c *cache) put(k cacheKey, a *answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		el.Value.(*cacheEntry).ans = a
		c.lru.MoveToFront(el)
		return
	}
	c.items[k] = c.lru.PushFront(&cacheEntry{key: k, ans: a})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
