package oauthtok

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/postern"
)

const (
	tenant = "contoso.onmicrosoft.com"
	client = "11111111-2222-3333-4444-555555555555"
	secret = "s3cr~et.value"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func setup(t *testing.T) (*entratest.Server, *Entra, *Cache, *clock) {
	t.Helper()
	srv := entratest.New(t)
	srv.AddApp(tenant, client, secret)
	clk := &clock{t: time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)}
	srv.SetClock(clk.Now)
	e := &Entra{
		Tenant: tenant, ClientID: client, Scope: ScopeGraph, TokenURL: srv.TokenURL(tenant),
		Secret: func(context.Context) (string, error) { return secret, nil },
	}
	return srv, e, NewCache(WithClock(clk.Now)), clk
}

func TestDefaultTokenURL(t *testing.T) {
	e := &Entra{Tenant: tenant}
	if got, want := e.tokenURL(), "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"; got != want {
		t.Fatalf("token URL %q, want %q", got, want)
	}
}

func TestExactRequest(t *testing.T) {
	srv, e, c, _ := setup(t)
	tok, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.Valid(tok.AccessToken) || tok.TokenType != "Bearer" {
		t.Fatalf("token %+v not issued by the server", tok)
	}
	if is, _ := srv.Lookup(tok.AccessToken); is.Scope != ScopeGraph || is.ClientID != client || is.Tenant != tenant {
		t.Fatalf("issued for %+v", is)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/"+tenant+"/oauth2/v2.0/token" || r.ContentType != "application/x-www-form-urlencoded" {
		t.Fatalf("request %s %s (%s)", r.Method, r.Path, r.ContentType)
	}
	want := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {client},
		"client_secret": {secret}, "scope": {ScopeGraph},
	}
	if !reflect.DeepEqual(r.Form, want) {
		t.Fatalf("form %v, want %v", r.Form, want)
	}
	// The secret goes in the body only, never also as Basic auth.
	if h := r.Header.Get("Authorization"); h != "" {
		t.Fatalf("Authorization header %q", h)
	}
}

func TestCached(t *testing.T) {
	srv, e, c, clk := setup(t)
	a, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	b, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessToken != b.AccessToken || len(srv.Requests()) != 1 {
		t.Fatalf("second call fetched: %d requests", len(srv.Requests()))
	}
	// Another scope is another token.
	o := *e
	o.Scope = ScopeOutlook
	d, err := c.Token(t.Context(), &o)
	if err != nil {
		t.Fatal(err)
	}
	if d.AccessToken == a.AccessToken || len(srv.Requests()) != 2 {
		t.Fatalf("other scope: %d requests", len(srv.Requests()))
	}
}

func TestRenewBeforeExpiry(t *testing.T) {
	for _, tc := range []struct {
		lifetime, early time.Duration
	}{
		{time.Hour, 5 * time.Minute},        // the usual Entra token
		{60 * time.Second, 6 * time.Second}, // short-lived: a tenth of the lifetime
	} {
		t.Run(tc.lifetime.String(), func(t *testing.T) {
			srv, e, c, clk := setup(t)
			srv.SetLifetime(tc.lifetime)
			a, err := c.Token(t.Context(), e)
			if err != nil {
				t.Fatal(err)
			}
			if want := clk.Now().Add(tc.lifetime); !a.Expiry.Equal(want) {
				t.Fatalf("expiry %v, want %v", a.Expiry, want)
			}
			clk.Advance(tc.lifetime - tc.early - time.Second)
			if b, _ := c.Token(t.Context(), e); b.AccessToken != a.AccessToken || len(srv.Requests()) != 1 {
				t.Fatalf("renewed too early: %d requests", len(srv.Requests()))
			}
			clk.Advance(time.Second)
			b, err := c.Token(t.Context(), e)
			if err != nil {
				t.Fatal(err)
			}
			if b.AccessToken == a.AccessToken || len(srv.Requests()) != 2 {
				t.Fatalf("not renewed %v before expiry: %d requests", tc.early, len(srv.Requests()))
			}
		})
	}
}

func TestRenewalFailureKeepsValidToken(t *testing.T) {
	srv, e, c, clk := setup(t)
	a, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(58 * time.Minute)
	srv.FailNext(entratest.Unavailable())
	b, err := c.Token(t.Context(), e)
	if err != nil || b.AccessToken != a.AccessToken {
		t.Fatalf("renewal failure with a valid token: %v", err)
	}
	clk.Advance(2 * time.Minute) // now expired
	srv.FailNext(entratest.Unavailable())
	if _, err := c.Token(t.Context(), e); err == nil {
		t.Fatal("expired token returned after a failed renewal")
	}
}

// gate holds every token request until released.
type gate struct {
	release chan struct{}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	<-g.release
	return http.DefaultTransport.RoundTrip(r)
}

func TestConcurrentCallersShareOneFetch(t *testing.T) {
	srv, e, c, _ := setup(t)
	g := &gate{release: make(chan struct{})}
	e.HTTPClient = &http.Client{Transport: g}
	const n = 16
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok, err := c.Token(t.Context(), e)
			errs[i] = err
			if err == nil {
				toks[i] = tok.AccessToken
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // let the callers pile up on the held fetch
	close(g.release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("caller %d: %q, %v", i, toks[i], errs[i])
		}
	}
	if got := len(srv.Requests()); got != 1 {
		t.Fatalf("%d requests, want 1", got)
	}
}

func TestInvalidateRenewsOnce(t *testing.T) {
	srv, e, c, _ := setup(t)
	a, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	srv.Revoke(a.AccessToken) // the resource answered 401
	c.Invalidate(e.Key(), a.AccessToken)
	b, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if b.AccessToken == a.AccessToken || !srv.Valid(b.AccessToken) || len(srv.Requests()) != 2 {
		t.Fatalf("not renewed: %d requests", len(srv.Requests()))
	}
	// A late 401 for the old token must not throw away the new one.
	c.Invalidate(e.Key(), a.AccessToken)
	if d, _ := c.Token(t.Context(), e); d.AccessToken != b.AccessToken || len(srv.Requests()) != 2 {
		t.Fatalf("stale invalidate renewed: %d requests", len(srv.Requests()))
	}
}

func TestPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name, code, aadsts string
		status             int
		mod                func(*entratest.Server, *Entra)
	}{
		{"bad secret", "invalid_client", "AADSTS7000215", 401, func(_ *entratest.Server, e *Entra) {
			e.Secret = func(context.Context) (string, error) { return "wrong", nil }
		}},
		{"unknown app", "unauthorized_client", "AADSTS700016", 400, func(_ *entratest.Server, e *Entra) {
			e.ClientID = "99999999-0000-0000-0000-000000000000"
		}},
		{"no consent", "invalid_grant", "AADSTS65001", 400, func(s *entratest.Server, _ *Entra) {
			s.FailNext(entratest.NoConsent(client))
		}},
		{"bad scope", "invalid_scope", "AADSTS1002012", 400, func(_ *entratest.Server, e *Entra) {
			e.Scope = "Mail.Send"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, e, c, _ := setup(t)
			tc.mod(srv, e)
			_, err := c.Token(t.Context(), e)
			if !postern.IsPermanent(err) {
				t.Fatalf("error %v not permanent", err)
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("error %T %v", err, err)
			}
			if te.Code != tc.code || te.ProviderCode != tc.aadsts || te.Status != tc.status || te.TraceID == "" {
				t.Fatalf("error %+v", te)
			}
			if !strings.HasPrefix(te.Description, tc.aadsts+": ") || strings.Contains(te.Description, "Trace ID") {
				t.Fatalf("description %q", te.Description)
			}
			if !strings.Contains(err.Error(), tc.aadsts) {
				t.Fatalf("message %q lacks the code", err)
			}
		})
	}
}

func TestTemporaryErrors(t *testing.T) {
	srv, e, c, _ := setup(t)

	srv.FailNext(entratest.Throttled(7 * time.Second))
	_, err := c.Token(t.Context(), e)
	if err == nil || postern.IsPermanent(err) {
		t.Fatalf("429: %v", err)
	}
	if d, ok := postern.RetryDelay(err); !ok || d != 7*time.Second {
		t.Fatalf("429 retry delay %v %v, want 7s", d, ok)
	}

	srv.FailNext(entratest.Unavailable())
	_, err = c.Token(t.Context(), e)
	var te *Error
	if err == nil || postern.IsPermanent(err) || !errors.As(err, &te) || te.Status != 503 {
		t.Fatalf("503: %v", err)
	}
	if _, ok := postern.RetryDelay(err); ok {
		t.Fatalf("503 without Retry-After has a delay")
	}

	// Failures are not cached: the next call fetches.
	if _, err := c.Token(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Requests()); got != 3 {
		t.Fatalf("%d requests, want 3", got)
	}
}

func TestNetworkErrorIsTemporary(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := &Entra{Tenant: tenant, ClientID: client, Scope: ScopeGraph, TokenURL: "http://" + addr + "/t/oauth2/v2.0/token",
		Secret: func(context.Context) (string, error) { return secret, nil }}
	_, err = NewCache().Token(t.Context(), e)
	if err == nil || postern.IsPermanent(err) {
		t.Fatalf("connection refused: %v", err)
	}
}

func TestSecretError(t *testing.T) {
	_, e, c, _ := setup(t)
	boom := postern.Permanent(errors.New("env POSTERN_ENTRA_SECRET is not set"))
	e.Secret = func(context.Context) (string, error) { return "", boom }
	if _, err := c.Token(t.Context(), e); !errors.Is(err, boom) || !postern.IsPermanent(err) {
		t.Fatalf("secret error: %v", err)
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	if d, ok := retryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now); !ok || d != 90*time.Second {
		t.Fatalf("date: %v %v", d, ok)
	}
	if _, ok := retryAfter("soon", now); ok {
		t.Fatal("garbage parsed")
	}
}

func TestCancelledCallerDoesNotCancelSharedFetch(t *testing.T) {
	srv, e, c, _ := setup(t)
	g := &gate{release: make(chan struct{})}
	e.HTTPClient = &http.Client{Transport: g}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error)
	go func() {
		_, err := c.Token(ctx, e)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(g.release)
	tok, err := c.Token(t.Context(), e)
	if err != nil || !srv.Valid(tok.AccessToken) {
		t.Fatalf("after cancel: %v", err)
	}
	if got := len(srv.Requests()); got != 1 {
		t.Fatalf("%d requests, want 1 (the first fetch should complete for the next caller)", got)
	}
}
