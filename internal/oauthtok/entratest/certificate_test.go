package entratest

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	tenant = "contoso.onmicrosoft.com"
	client = "11111111-2222-3333-4444-555555555555"
	scope  = "https://graph.microsoft.com/.default"
)

var now = time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)

// answer is a token endpoint answer, success or error.
type answer struct {
	status      int
	AccessToken string `json:"access_token"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
	TraceID     string `json:"trace_id"`
	Correlation string `json:"correlation_id"`
}

func post(t *testing.T, tokenURL string, form url.Values) answer {
	t.Helper()
	resp, err := http.PostForm(tokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("answer %d is not JSON: %v", resp.StatusCode, err)
	}
	return a
}

func assertionForm(assertion string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "client_id": {client}, "scope": {scope},
		"client_assertion_type": {AssertionType}, "client_assertion": {assertion},
	}
}

type signer struct {
	method jwt.SigningMethod
	key    any
	header map[string]any
	claims jwt.MapClaims
}

// goodSigner signs as a correct client does, at now.
func goodSigner(s *Server, cert *x509.Certificate, key *rsa.PrivateKey) *signer {
	sum := sha256.Sum256(cert.Raw)
	return &signer{
		method: jwt.SigningMethodPS256, key: key,
		header: map[string]any{"x5t#S256": base64.RawURLEncoding.EncodeToString(sum[:])},
		claims: jwt.MapClaims{
			"aud": s.TokenURL(tenant), "iss": client, "sub": client, "jti": "8a0c5a4e-0f3c-4b57-9d1a-1c2b3d4e5f60",
			"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		},
	}
}

func (g *signer) sign(t *testing.T) string {
	t.Helper()
	tok := jwt.NewWithClaims(g.method, g.claims)
	for k, v := range g.header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(g.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newCertServer(t *testing.T) (*Server, *x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	s := New(t)
	s.SetClock(func() time.Time { return now })
	cert, key := NewCertificateKey(t, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))
	s.AddCertificate(tenant, client, cert)
	return s, cert, key
}

func TestAssertionAccepted(t *testing.T) {
	s, cert, key := newCertServer(t)
	for _, tc := range []struct {
		name string
		mod  func(*signer)
	}{
		{"PS256 with x5t#S256", func(*signer) {}},
		{"RS256 with x5t#S256", func(g *signer) { g.method = jwt.SigningMethodRS256 }},
		{"RS256 with SHA-1 x5t", func(g *signer) {
			sum := sha1.Sum(cert.Raw)
			g.method, g.header = jwt.SigningMethodRS256, map[string]any{"x5t": base64.RawURLEncoding.EncodeToString(sum[:])}
		}},
		{"nbf 4 minutes ahead (skew)", func(g *signer) { g.claims["nbf"] = now.Add(4 * time.Minute).Unix() }},
		{"exp 4 minutes ago (skew)", func(g *signer) { g.claims["exp"] = now.Add(-4 * time.Minute).Unix() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := goodSigner(s, cert, key)
			tc.mod(g)
			a := post(t, s.TokenURL(tenant), assertionForm(g.sign(t)))
			if a.status != http.StatusOK || !s.Valid(a.AccessToken) {
				t.Fatalf("answer %+v", a)
			}
			if is, _ := s.Lookup(a.AccessToken); is.ClientID != client || is.Tenant != tenant || is.Scope != scope {
				t.Fatalf("issued %+v", is)
			}
		})
	}
}

func TestAssertionRefused(t *testing.T) {
	s, cert, key := newCertServer(t)
	otherCert, otherKey := NewCertificateKey(t, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))
	expiredCert, expiredKey := NewCertificateKey(t, now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0))
	s.AddCertificate(tenant, client, expiredCert)
	for _, tc := range []struct {
		name   string
		status int
		error  string
		code   int
		text   string
		form   func(*testing.T) url.Values
	}{
		{"signed by another key", 401, "invalid_client", 700027, "failed signature validation", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			g.key = otherKey
			return assertionForm(g.sign(t))
		}},
		{"unregistered certificate", 401, "invalid_client", 700027, "is not registered on application", func(t *testing.T) url.Values {
			return assertionForm(goodSigner(s, otherCert, otherKey).sign(t))
		}},
		{"no thumbprint", 401, "invalid_client", 700027, "is not registered on application", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			g.header = nil
			return assertionForm(g.sign(t))
		}},
		{"SHA-256 thumbprint in x5t", 401, "invalid_client", 700027, "is not registered on application", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			g.header = map[string]any{"x5t": g.header["x5t#S256"]}
			return assertionForm(g.sign(t))
		}},
		{"registered certificate expired", 401, "invalid_client", 700027, "The key used is expired", func(t *testing.T) url.Values {
			return assertionForm(goodSigner(s, expiredCert, expiredKey).sign(t))
		}},
		{"HS256 keyed with the certificate", 401, "invalid_client", 700027, "failed signature validation", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			g.method, g.key = jwt.SigningMethodHS256, cert.Raw
			return assertionForm(g.sign(t))
		}},
		{"expired", 401, "invalid_client", 700024, "not within its valid time range", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			g.claims["exp"] = now.Add(-6 * time.Minute).Unix()
			return assertionForm(g.sign(t))
		}},
		{"not yet valid", 401, "invalid_client", 700024, "not within its valid time range", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			g.claims["nbf"] = now.Add(6 * time.Minute).Unix()
			return assertionForm(g.sign(t))
		}},
		{"no exp", 401, "invalid_client", 700024, "not within its valid time range", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			delete(g.claims, "exp")
			return assertionForm(g.sign(t))
		}},
		{"aud is the issuer, not the token URL", 401, "invalid_client", 700023, "audience claim", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			g.claims["aud"] = s.URL + "/" + tenant + "/v2.0"
			return assertionForm(g.sign(t))
		}},
		{"iss another app", 401, "invalid_client", 700021, "doesn't match 'client_id'", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			g.claims["iss"] = "99999999-0000-0000-0000-000000000000"
			return assertionForm(g.sign(t))
		}},
		{"sub missing", 401, "invalid_client", 700021, "doesn't match 'client_id'", func(t *testing.T) url.Values {
			g := goodSigner(s, cert, key)
			delete(g.claims, "sub")
			return assertionForm(g.sign(t))
		}},
		{"not a JWT", 400, "invalid_request", 50027, "invalid or malformed", func(*testing.T) url.Values {
			return assertionForm("not-a-jwt")
		}},
		{"wrong assertion type", 400, "invalid_request", 900144, "client_assertion_type", func(t *testing.T) url.Values {
			f := assertionForm(goodSigner(s, cert, key).sign(t))
			f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return f
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, s.TokenURL(tenant), tc.form(t))
			if a.status != tc.status || a.Error != tc.error || len(a.Codes) != 1 || a.Codes[0] != tc.code || a.AccessToken != "" {
				t.Fatalf("answer %+v, want %d %s %d", a, tc.status, tc.error, tc.code)
			}
			first, _, _ := strings.Cut(a.Description, "\r\n")
			if !strings.HasPrefix(first, "AADSTS"+itoa(tc.code)+": ") || !strings.Contains(first, tc.text) {
				t.Fatalf("description %q, want %q", first, tc.text)
			}
			if !strings.Contains(a.Description, "\r\nTrace ID: "+a.TraceID) || a.Correlation == "" {
				t.Fatalf("description %q lacks the trace lines", a.Description)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// A secret still works for an app that also has a certificate, and a
// secret-less certificate app refuses secrets as Entra does.
func TestSecretBesideCertificate(t *testing.T) {
	s, _, _ := newCertServer(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "scope": {scope}, "client_secret": {"guess"}}
	if a := post(t, s.TokenURL(tenant), form); a.status != 401 || len(a.Codes) != 1 || a.Codes[0] != 7000215 {
		t.Fatalf("secret to a certificate-only app: %+v", a)
	}
	s.AddApp(tenant, client, "guess")
	if a := post(t, s.TokenURL(tenant), form); a.status != 200 {
		t.Fatalf("secret: %+v", a)
	}
	// AddApp kept the certificate.
	cert, key := NewCertificateKey(t, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))
	s.AddCertificate(tenant, client, cert)
	if a := post(t, s.TokenURL(tenant), assertionForm(goodSigner(s, cert, key).sign(t))); a.status != 200 {
		t.Fatalf("certificate after AddApp: %+v", a)
	}
}

func TestRequestRecordsAssertion(t *testing.T) {
	s, cert, key := newCertServer(t)
	post(t, s.TokenURL(tenant), assertionForm(goodSigner(s, cert, key).sign(t)))
	r := s.Requests()[0]
	if r.Assertion == nil || r.Assertion.Header["alg"] != "PS256" || r.Assertion.Claims["iss"] != client {
		t.Fatalf("recorded assertion %+v", r.Assertion)
	}
}

// The JWT front presents the same URL to clients, so assertions name it.
func TestJWTServerCertificate(t *testing.T) {
	s := NewJWT(t)
	s.SetClock(func() time.Time { return now })
	cert, key := NewCertificateKey(t, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0))
	s.AddCertificate(tenant, client, cert)
	a := post(t, s.TokenURL(tenant), assertionForm(goodSigner(s.Server, cert, key).sign(t)))
	if a.status != 200 || !s.Valid(a.AccessToken) {
		t.Fatalf("answer %+v", a)
	}
}

func TestNewCertificate(t *testing.T) {
	p, cert := NewCertificate(t)
	b, rest := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("first block %v", b)
	}
	k, _ := pem.Decode(rest)
	if k == nil || k.Type != "PRIVATE KEY" {
		t.Fatalf("second block %v", k)
	}
	key, err := x509.ParsePKCS8PrivateKey(k.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*rsa.PrivateKey).PublicKey.Equal(cert.PublicKey) || string(b.Bytes) != string(cert.Raw) {
		t.Fatal("key and certificate do not belong together")
	}
	if !cert.NotBefore.Before(now) || !cert.NotAfter.After(time.Now().AddDate(0, 11, 0)) {
		t.Fatalf("validity %v to %v", cert.NotBefore, cert.NotAfter)
	}
}
