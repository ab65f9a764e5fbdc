package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/postern/postern/internal/egress"
)

// Payload forms a route can ask for.
const (
	PayloadJSON = "json" // the signed email.received event (default)
	PayloadRaw  = "raw"  // the raw message as received, message/rfc822
)

// Defaults applied to a Target field left zero.
const (
	DefaultTimeout = 30 * time.Second
	DefaultMaxAge  = 24 * time.Hour
)

// Target is where one route's messages go. Exactly one of URL and Dir is
// meant to be set; Dir wins when both are.
type Target struct {
	URL string
	// Dir makes this a directory target: the payload is written to
	// Dir/<webhook-id>.json (for raw, .eml with its envelope beside it in
	// .envelope.json) instead of POSTed, for trying Postern out without an
	// application.
	Dir string
	// Secrets sign each request. During a rotation there are several and
	// each adds a signature, so receivers holding either key accept it.
	Secrets [][]byte
	// SecretSource, when set, gives the keys at each delivery instead of
	// Secrets: secrets read at run time (Secrets Manager, through a cache)
	// so a rotation applies without a restart. An error makes the attempt
	// fail as Postern's own trouble (the job is retried); see
	// NewSecretSource.
	SecretSource func(ctx context.Context) ([][]byte, error)
	Payload      string        // PayloadJSON (default) or PayloadRaw
	Timeout      time.Duration // per request; DefaultTimeout when zero
	// MaxAge bounds how long after routing a message keeps being retried;
	// past it a failed attempt ends in a DSN. DefaultMaxAge when zero.
	MaxAge time.Duration
	// FailureURL, when set, receives a signed email.failed event when a
	// delivery fails for good (best effort: the DSN is the record).
	FailureURL string
	// AllowPrivate lets URL and FailureURL reach loopback, private and
	// shared (CGNAT) addresses, for applications on the same host or
	// network: the allow_private: true shorthand, as Allow.Private.
	// Link-local and cloud metadata addresses stay refused.
	AllowPrivate bool
	// Allow opens the networks and host names the route's webhook.allow
	// lists, checked on the address each connection is made to. Like
	// AllowPrivate it applies when the Handler was built with its own
	// guarded clients (a nil client in New).
	Allow egress.Allow
}

// egressPolicy is the target's address policy, AllowPrivate folded in.
func (t Target) egressPolicy() egress.Allow {
	a := t.Allow
	a.Private = a.Private || t.AllowPrivate
	return a
}

// guardedClients holds one guarded client per address policy, so targets
// that share a policy share connections. The routes bound how many there
// are.
type guardedClients struct {
	mu      sync.Mutex
	clients map[string]*http.Client // by egress.Allow.Key; only grows
}

// get returns the client for policy a, building it on first use.
func (g *guardedClients) get(a egress.Allow) *http.Client {
	key := a.Key()
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.clients[key]; ok {
		return c
	}
	if g.clients == nil {
		g.clients = map[string]*http.Client{}
	}
	c := egress.NewClient(egress.Guard{Allow: a})
	g.clients[key] = c
	return c
}

// Targets looks up a route's target by name. It reports false for a route
// the configuration no longer has.
type Targets func(route string) (Target, bool)

// withDefaults fills zero fields with their defaults.
func (t Target) withDefaults() Target {
	if t.Payload == "" {
		t.Payload = PayloadJSON
	}
	if t.Timeout <= 0 {
		t.Timeout = DefaultTimeout
	}
	if t.MaxAge <= 0 {
		t.MaxAge = DefaultMaxAge
	}
	return t
}

// resolveSecrets puts the target's current keys in d.target.Secrets when
// they come from a SecretSource, before anything is signed: the payload
// and, should the delivery fail for good, the failure notice.
func (d *delivery) resolveSecrets(ctx context.Context) error {
	if d.target.SecretSource == nil || d.target.Dir != "" {
		return nil
	}
	keys, err := d.target.SecretSource(ctx)
	if err != nil {
		return err
	}
	d.target.Secrets = keys
	return nil
}

// NewSecretSource returns a Target.SecretSource for one route's secrets as
// the configuration writes them (refs: literals, env:, file: or
// secretsmanager: references). resolve returns a reference's current text
// and is called for every delivery, so it should cache (secrets.Cache's
// Resolve does, with a TTL). A text is parsed with ParseSecret only when it
// differs from the one before. Errors name the route and the secret's
// index, never its value.
func NewSecretSource(route string, refs []string, resolve func(ctx context.Context, ref string) (string, error)) func(ctx context.Context) ([][]byte, error) {
	type parsed struct {
		text string
		key  []byte
	}
	var mu sync.Mutex // guards last
	last := make([]parsed, len(refs))
	return func(ctx context.Context) ([][]byte, error) {
		texts := make([]string, len(refs))
		for i, ref := range refs {
			t, err := resolve(ctx, ref)
			if err != nil {
				return nil, fmt.Errorf("config: routes %s webhook.secrets[%d]: %w", route, i, err)
			}
			texts[i] = t
		}
		mu.Lock()
		defer mu.Unlock()
		keys := make([][]byte, len(refs))
		for i, t := range texts {
			if last[i].key == nil || last[i].text != t {
				k, err := ParseSecret(t)
				if err != nil {
					return nil, fmt.Errorf("config: routes %s webhook.secrets[%d]: %w", route, i, err)
				}
				last[i] = parsed{text: t, key: k}
			}
			keys[i] = last[i].key
		}
		return keys, nil
	}
}
