// Package secrets reads secrets from AWS Secrets Manager at run time, through
// a cache with a TTL, so that a rotated secret applies without a redeploy and
// no function's environment holds a secret.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/postern/postern/internal/config"
)

// GetSecretValueAPI is the one Secrets Manager call the cache makes;
// *secretsmanager.Client has it.
type GetSecretValueAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ GetSecretValueAPI = (*secretsmanager.Client)(nil)

// Defaults of New.
const (
	// DefaultTTL is how long a value is served before it is read again:
	// a rotation reaches every function within it.
	DefaultTTL = 5 * time.Minute
	// DefaultGrace is how long past its TTL a value is still served while
	// Secrets Manager cannot be read, so that a short outage of it does
	// not stop delivery. Past it, Get fails and the job is retried.
	DefaultGrace = time.Hour
	// retryAfter spaces the reads of a secret whose refresh failed, so an
	// outage does not cost every job a call that times out.
	retryAfter = 30 * time.Second
)

// Cache serves secrets by id (ARN or name). One Cache serves concurrent
// callers; each secret is read by one caller at a time.
type Cache struct {
	api   GetSecretValueAPI
	ttl   time.Duration
	grace time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex // guards entries (the map, not the entries)
	entries map[string]*entry
}

// entry is one secret. mu is held across a read from Secrets Manager, so
// concurrent callers of an expired secret wait for one read instead of
// each making their own.
type entry struct {
	mu sync.Mutex
	// Guarded by mu. ok says value holds a value read at fetched; retry is
	// the earliest time of the next read after a failed refresh.
	ok      bool
	value   string
	fetched time.Time
	retry   time.Time
}

// Option tunes a Cache.
type Option func(*Cache)

// WithGrace sets how long past its TTL a value is served while it cannot
// be refreshed (DefaultGrace when not given; 0 serves nothing stale).
func WithGrace(d time.Duration) Option { return func(c *Cache) { c.grace = max(d, 0) } }

// WithLogger sets where refresh failures are reported (slog.Default when
// not given).
func WithLogger(l *slog.Logger) Option { return func(c *Cache) { c.log = l } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(c *Cache) { c.now = now } }

// New returns a cache over client that reads a secret again once it is ttl
// old (DefaultTTL when ttl <= 0).
func New(client GetSecretValueAPI, ttl time.Duration, opts ...Option) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	c := &Cache{api: client, ttl: ttl, grace: DefaultGrace, now: time.Now, log: slog.Default(), entries: map[string]*entry{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Get returns the current value (SecretString, or SecretBinary as text) of
// the secret id, an ARN or a name. A value younger than the TTL is served
// from the cache. An older one is read again; if that fails, the old value
// is served (with a warning) until it is TTL + grace old. A secret never
// read, or read too long ago, is an error, temporary unless the secret
// does not exist. Errors name the secret, never its value.
func (c *Cache) Get(ctx context.Context, id string) (string, error) {
	c.mu.Lock()
	e := c.entries[id]
	if e == nil {
		e = &entry{}
		c.entries[id] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.now()
	age := now.Sub(e.fetched)
	if e.ok && age < c.ttl {
		return e.value, nil
	}
	stale := e.ok && age < c.ttl+c.grace
	if stale && now.Before(e.retry) {
		return e.value, nil
	}
	v, err := c.read(ctx, id)
	if err == nil {
		e.ok, e.value, e.fetched, e.retry = true, v, c.now(), time.Time{}
		return v, nil
	}
	if stale {
		e.retry = now.Add(min(retryAfter, c.ttl))
		c.log.LogAttrs(ctx, slog.LevelWarn, "secret refresh failed; serving the value read before",
			slog.String("secret", id), slog.Duration("age", age), slog.String("error", err.Error()))
		return e.value, nil
	}
	return "", err
}

// Resolve returns the text of a secret as the configuration writes it:
// "secretsmanager:ID" through the cache, any other form (a literal,
// env:NAME, file:PATH) through config.ResolveSecret. A nil Cache resolves
// only the other forms.
func (c *Cache) Resolve(ctx context.Context, ref string) (string, error) {
	id, ok := config.SecretsManagerID(ref)
	if !ok {
		return config.ResolveSecret(ref)
	}
	if c == nil {
		return "", fmt.Errorf("secret %s: no Secrets Manager client in this process; only the AWS functions read secretsmanager: secrets", id)
	}
	return c.Get(ctx, id)
}

// read makes one GetSecretValue call.
func (c *Cache) read(ctx context.Context, id string) (string, error) {
	out, err := c.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", describe(id, err)
	}
	switch {
	case out.SecretString != nil && *out.SecretString != "":
		return *out.SecretString, nil
	case len(out.SecretBinary) > 0:
		return string(out.SecretBinary), nil
	}
	return "", fmt.Errorf("secret %s is empty: put the value in it (aws secretsmanager put-secret-value)", id)
}

// ErrNotFound is wrapped by errors for a secret Secrets Manager does not
// have (or has scheduled for deletion).
var ErrNotFound = errors.New("secret not found")

// describe turns a Secrets Manager error into one that names the secret
// and the fix.
func describe(id string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ResourceNotFoundException":
			return fmt.Errorf("secret %s: %w: create it, or fix the secretsmanager: reference in the configuration (%v)", id, ErrNotFound, err)
		case "AccessDeniedException":
			return fmt.Errorf("secret %s: access denied: grant secretsmanager:GetSecretValue on it (and kms:Decrypt on its key) to this function's role: %w", id, err)
		case "InvalidRequestException":
			return fmt.Errorf("secret %s cannot be read now (deleted, or not yet rotated in): %w", id, err)
		}
	}
	return fmt.Errorf("read secret %s: %w", id, err)
}
