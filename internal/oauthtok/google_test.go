package oauthtok

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/oauthtok/googletest"
	"github.com/postern/postern/internal/postern"
)

const (
	gAccount = "relay@postern-test.iam.gserviceaccount.com"
	gMailbox = "noreply@example.com"
)

func googleSetup(t *testing.T) (*googletest.Server, *googletest.Account, *Google, *Cache, *clock) {
	t.Helper()
	srv := googletest.New(t)
	acct := srv.NewAccount(t, gAccount)
	srv.Delegate(acct, ScopeGmailSend)
	srv.AddUser(gMailbox)
	// The jwt package stamps iat/exp from time.Now, so the fake clock starts
	// at the real time.
	clk := &clock{t: time.Now()}
	srv.SetClock(clk.Now)
	key := srv.KeyJSON(acct)
	g := &Google{
		ServiceAccountJSON: func(context.Context) ([]byte, error) { return key, nil },
		Subject:            gMailbox,
	}
	return srv, acct, g, NewCache(WithClock(clk.Now)), clk
}

func TestGoogleExactRequest(t *testing.T) {
	srv, acct, g, c, _ := googleSetup(t)
	before := time.Now().Unix()
	tok, err := c.Token(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.Valid(tok.AccessToken) || tok.TokenType != "Bearer" || tok.ExpiresIn != 3599 {
		t.Fatalf("token %+v not issued by the server", tok)
	}
	if is, _ := srv.Lookup(tok.AccessToken); is != (googletest.Issued{Account: gAccount, Subject: gMailbox, Scope: ScopeGmailSend, Expiry: is.Expiry}) {
		t.Fatalf("issued for %+v", is)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/token" || r.ContentType != "application/x-www-form-urlencoded" {
		t.Fatalf("request %s %s (%s)", r.Method, r.Path, r.ContentType)
	}
	if len(r.Form) != 2 || r.Form.Get("grant_type") != googletest.GrantType || r.Form.Get("assertion") == "" {
		t.Fatalf("form %v", r.Form)
	}
	if want := map[string]string{"alg": "RS256", "typ": "JWT", "kid": acct.KeyID}; !reflect.DeepEqual(r.JWTHeader, want) {
		t.Fatalf("JWT header %v, want %v", r.JWTHeader, want)
	}
	cl := r.Claims
	if cl.Iss != gAccount || cl.Sub != gMailbox || cl.Scope != ScopeGmailSend || cl.Aud != srv.TokenURL() {
		t.Fatalf("claims %+v", cl)
	}
	if cl.Exp-cl.Iat > 3600 || cl.Exp < before+3000 || cl.Iat > time.Now().Unix() {
		t.Fatalf("iat %d exp %d (now %d)", cl.Iat, cl.Exp, before)
	}
	if h := r.Header.Get("Authorization"); h != "" {
		t.Fatalf("Authorization header %q", h)
	}
}

func TestGoogleTokenURLOverrideAndScopes(t *testing.T) {
	srv, acct, g, c, _ := googleSetup(t)
	const extra = "https://www.googleapis.com/auth/gmail.readonly"
	srv.Delegate(acct, extra)
	// A key file naming Google's endpoint, redirected by TokenURL.
	key := acct.JSON(GoogleTokenURL)
	g.ServiceAccountJSON = func(context.Context) ([]byte, error) { return key, nil }
	g.TokenURL = srv.TokenURL()
	g.Scopes = []string{ScopeGmailSend, extra}
	if _, err := c.Token(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	if cl := srv.Requests()[0].Claims; cl.Scope != ScopeGmailSend+" "+extra || cl.Aud != srv.TokenURL() {
		t.Fatalf("claims %+v", cl)
	}
	if k := g.Key(); k != (Key{Provider: "google", Client: gMailbox, Scope: ScopeGmailSend + " " + extra}) {
		t.Fatalf("key %+v", k)
	}
}

func TestGoogleDefaultTokenURL(t *testing.T) {
	_, acct, _, _, _ := googleSetup(t)
	js := string(acct.JSON(""))
	conf, err := jwtConfig([]byte(strings.Replace(js, `"token_uri": "",`, "", 1)), []string{ScopeGmailSend})
	if err != nil || conf.TokenURL != "https://oauth2.googleapis.com/token" {
		t.Fatalf("token URL %v, %v", conf, err)
	}
}

func TestGoogleCached(t *testing.T) {
	srv, _, g, c, clk := googleSetup(t)
	a, err := c.Token(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	b, err := c.Token(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessToken != b.AccessToken || len(srv.Requests()) != 1 {
		t.Fatalf("second call fetched: %d requests", len(srv.Requests()))
	}
	// Renewed 5 minutes before the hour is up (expires_in 3599).
	clk.Advance(25 * time.Minute)
	d, err := c.Token(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	if d.AccessToken == a.AccessToken || len(srv.Requests()) != 2 {
		t.Fatalf("not renewed: %d requests", len(srv.Requests()))
	}
	// After a 401, Invalidate renews.
	c.Invalidate(g.Key(), d.AccessToken)
	e, err := c.Token(t.Context(), g)
	if err != nil || e.AccessToken == d.AccessToken || len(srv.Requests()) != 3 {
		t.Fatalf("after invalidate: %v, %d requests", err, len(srv.Requests()))
	}
}

func TestGooglePermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		arrange     func(*googletest.Server, *Google)
		status      int
		code, inErr string
	}{
		{"not delegated", func(s *googletest.Server, g *Google) {
			g.Scopes = []string{"https://mail.google.com/"}
		}, 401, "unauthorized_client", "Client is unauthorized to retrieve access tokens"},
		{"unknown mailbox", func(s *googletest.Server, g *Google) {
			g.Subject = "nobody@example.com"
		}, 400, "invalid_grant", "Invalid email or User ID"},
		{"rotated key", func(s *googletest.Server, g *Google) {
			// A new key replaces the one in g's key file.
			s.NewAccount(t, gAccount)
		}, 400, "invalid_grant", "Invalid JWT Signature."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, g, c, _ := googleSetup(t)
			tc.arrange(srv, g)
			_, err := c.Token(t.Context(), g)
			if !postern.IsPermanent(err) {
				t.Fatalf("error %v is not permanent", err)
			}
			var te *Error
			if !errors.As(err, &te) || te.Provider != "google" || te.Status != tc.status || te.Code != tc.code {
				t.Fatalf("error %#v", err)
			}
			if !strings.Contains(err.Error(), tc.inErr) {
				t.Fatalf("error %q lacks %q", err, tc.inErr)
			}
		})
	}
}

func TestGoogleBadKeyFile(t *testing.T) {
	for name, js := range map[string]string{
		"not json":   `{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE`,
		"wrong type": `{"type": "authorized_user", "client_id": "x", "client_secret": "y"}`,
		"bad pem":    `{"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}`,
	} {
		t.Run(name, func(t *testing.T) {
			srv, _, g, c, _ := googleSetup(t)
			g.ServiceAccountJSON = func(context.Context) ([]byte, error) { return []byte(js), nil }
			_, err := c.Token(t.Context(), g)
			if !postern.IsPermanent(err) {
				t.Fatalf("error %v is not permanent", err)
			}
			if strings.Contains(err.Error(), "MIIE") || strings.Contains(err.Error(), "AAAA") {
				t.Fatalf("error %q shows key material", err)
			}
			if n := len(srv.Requests()); n != 0 {
				t.Fatalf("%d requests", n)
			}
		})
	}
}

func TestGoogleKeySourceError(t *testing.T) {
	_, _, g, c, _ := googleSetup(t)
	boom := errors.New("secrets manager: throttled")
	g.ServiceAccountJSON = func(context.Context) ([]byte, error) { return nil, boom }
	if _, err := c.Token(t.Context(), g); !errors.Is(err, boom) || postern.IsPermanent(err) {
		t.Fatalf("error %v", err)
	}
}

func TestGoogleTemporaryErrors(t *testing.T) {
	srv, _, g, c, _ := googleSetup(t)
	srv.FailNext(googletest.Throttled(7 * time.Second))
	_, err := c.Token(t.Context(), g)
	if err == nil || postern.IsPermanent(err) {
		t.Fatalf("429: %v", err)
	}
	if d, ok := postern.RetryDelay(err); !ok || d != 7*time.Second {
		t.Fatalf("429 retry after %v %v", d, ok)
	}
	srv.FailNext(googletest.Unavailable())
	_, err = c.Token(t.Context(), g)
	var te *Error
	if err == nil || postern.IsPermanent(err) || !errors.As(err, &te) || te.Status != 503 {
		t.Fatalf("503: %v", err)
	}
	if _, err := c.Token(t.Context(), g); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}
