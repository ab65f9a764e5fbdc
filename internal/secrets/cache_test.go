package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/logbuf"
	"github.com/postern/postern/internal/standin"
)

// smClient is a Secrets Manager client for the moto server at endpoint,
// with its own HTTP client (this machine sets AWS_CA_BUNDLE) and no
// retries, so a stopped server fails at once.
func smClient(endpoint string) *secretsmanager.Client {
	cfg := aws.Config{Region: standin.Region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = awsclient.HTTPClient(&http.Client{Timeout: 10 * time.Second})
		o.RetryMaxAttempts = 1
	})
}

// counting counts the calls that reach Secrets Manager.
type counting struct {
	GetSecretValueAPI
	n atomic.Int64
}

func (c *counting) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.n.Add(1)
	return c.GetSecretValueAPI.GetSecretValue(ctx, in, o...)
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRotationAppliesAfterTheTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sm := smClient(standin.Moto(t))
	name := fmt.Sprintf("postern/test/%s-%d", t.Name(), time.Now().UnixNano())
	out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("whsec_first")})
	if err != nil {
		t.Fatal(err)
	}
	api := &counting{GetSecretValueAPI: sm}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(api, time.Minute, WithClock(clk.now))

	// Concurrent first reads make one call.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if v, err := c.Get(ctx, name); err != nil || v != "whsec_first" {
				t.Errorf("Get = %q, %v", v, err)
			}
		})
	}
	wg.Wait()
	if got := api.n.Load(); got != 1 {
		t.Fatalf("8 concurrent first reads made %d calls, want 1", got)
	}
	// The ARN names the same secret; it is cached under its own id.
	if v, err := c.Get(ctx, *out.ARN); err != nil || v != "whsec_first" {
		t.Fatalf("Get(ARN) = %q, %v", v, err)
	}

	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("whsec_second")}); err != nil {
		t.Fatal(err)
	}
	clk.add(59 * time.Second)
	if v, _ := c.Get(ctx, name); v != "whsec_first" {
		t.Fatalf("within the TTL Get = %q, want the cached whsec_first", v)
	}
	clk.add(2 * time.Second)
	if v, err := c.Get(ctx, name); err != nil || v != "whsec_second" {
		t.Fatalf("after the TTL Get = %q, %v; want the rotated whsec_second", v, err)
	}
	if got := api.n.Load(); got != 3 {
		t.Errorf("%d calls, want 3 (first read, ARN, refresh)", got)
	}
}

func TestAFailedRefreshServesTheLastValueForTheGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := standin.StartMoto(t) // stopped below
	sm := smClient(srv.Endpoint)
	name := "postern/test/grace"
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("s3cr3t-value")}); err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	api := &counting{GetSecretValueAPI: sm}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := New(api, time.Minute, WithGrace(10*time.Minute), WithClock(clk.now), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	if v, err := c.Get(ctx, name); err != nil || v != "s3cr3t-value" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Minute)
	if v, err := c.Get(ctx, name); err != nil || v != "s3cr3t-value" {
		t.Fatalf("in the grace, with Secrets Manager down, Get = %q, %v; want the last value", v, err)
	}
	if !strings.Contains(logs.String(), `"msg":"secret refresh failed; serving the value read before"`) || !strings.Contains(logs.String(), name) {
		t.Errorf("no warning naming the secret: %s", logs.String())
	}
	if strings.Contains(logs.String(), "s3cr3t-value") {
		t.Errorf("the secret's value was logged: %s", logs.String())
	}
	calls := api.n.Load()
	clk.add(10 * time.Second)
	if v, _ := c.Get(ctx, name); v != "s3cr3t-value" || api.n.Load() != calls {
		t.Errorf("a read right after a failed refresh called again (%d calls, was %d) or gave %q", api.n.Load(), calls, v)
	}
	clk.add(9 * time.Minute)
	if v, err := c.Get(ctx, name); err == nil {
		t.Fatalf("past TTL + grace Get = %q, nil; want an error", v)
	} else if !strings.Contains(err.Error(), name) {
		t.Errorf("error does not name the secret: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// moto restarts empty: the secret is gone now.
	if _, err := c.Get(ctx, name); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "create it, or fix the secretsmanager: reference") {
		t.Errorf("a missing secret: %v", err)
	}
}

func TestFirstReadFailureIsAnError(t *testing.T) {
	t.Parallel()
	c := New(smClient(standin.Moto(t)), 0)
	if c.ttl != DefaultTTL {
		t.Errorf("ttl %s, want the default %s", c.ttl, DefaultTTL)
	}
	_, err := c.Get(context.Background(), "postern/test/never-created")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "postern/test/never-created") {
		t.Fatalf("want ErrNotFound naming the secret, got %v", err)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	var nilCache *Cache
	if v, err := nilCache.Resolve(context.Background(), "literal"); err != nil || v != "literal" {
		t.Errorf("Resolve(literal) = %q, %v", v, err)
	}
	if _, err := nilCache.Resolve(context.Background(), "secretsmanager:x"); err == nil || !strings.Contains(err.Error(), "only the AWS functions") {
		t.Errorf("nil cache resolved a secretsmanager: secret: %v", err)
	}
	ctx := context.Background()
	sm := smClient(standin.Moto(t))
	name := fmt.Sprintf("postern/test/resolve-%d", time.Now().UnixNano())
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("v")}); err != nil {
		t.Fatal(err)
	}
	if v, err := New(sm, 0).Resolve(ctx, "secretsmanager:"+name); err != nil || v != "v" {
		t.Errorf("Resolve = %q, %v", v, err)
	}
}
