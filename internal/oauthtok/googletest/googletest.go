// Package googletest is a loopback stand-in for Google's OAuth 2.0 token
// endpoint (POST /token) as service accounts with domain-wide delegation use
// it: the jwt-bearer grant (RFC 7523) with an RS256 assertion signed by the
// service account's key. It verifies the assertion as Google does (signature
// against the account's public key, iss, sub, scope, aud, iat/exp), answers
// errors with Google's codes, texts and statuses, records every request and
// remembers the tokens it issued so a Gmail stand-in can check a bearer token.
package googletest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/oauthtok/oauthtest"
)

// GrantType is the jwt-bearer grant type.
const GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// Claims are the assertion's claims the server checks.
type Claims struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// Request is one request the server received, as it arrived, with the
// assertion decoded when it could be.
type Request struct {
	Method      string
	Path        string
	ContentType string
	Header      http.Header
	Form        url.Values
	JWTHeader   map[string]string // alg, typ, kid
	Claims      Claims
}

// Failure is a scripted error answer.
type Failure struct {
	Status      int
	RetryAfter  string // Retry-After header value, if any
	Error       string // OAuth error; empty sends a bare status
	Description string
}

// Throttled is a 429 with a Retry-After in whole seconds.
func Throttled(after time.Duration) Failure {
	return Failure{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(int(after / time.Second))}
}

// Unavailable is a bare 503.
func Unavailable() Failure { return Failure{Status: http.StatusServiceUnavailable} }

// NotDelegated is Google's answer when the service account has no
// domain-wide delegation, or not for every scope requested.
func NotDelegated() Failure {
	return Failure{Status: http.StatusUnauthorized, Error: "unauthorized_client",
		Description: "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}
}

// UnknownUser is Google's answer for a "sub" that is no user of the domain.
func UnknownUser() Failure {
	return Failure{Status: http.StatusBadRequest, Error: "invalid_grant", Description: "Invalid email or User ID"}
}

// BadSignature is Google's answer for an assertion not signed by a current
// key of the account (deleted or rotated key).
func BadSignature() Failure {
	return Failure{Status: http.StatusBadRequest, Error: "invalid_grant", Description: "Invalid JWT Signature."}
}

// Account is a service account and its key pair.
type Account struct {
	Email, ClientID, KeyID, ProjectID string
	Key                               *rsa.PrivateKey
}

// JSON is the account's key file, as the Cloud console downloads it, with
// token_uri set to tokenURI.
func (a *Account) JSON(tokenURI string) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(a.Key)
	if err != nil {
		panic(err)
	}
	b, _ := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  a.ProjectID,
		"private_key_id":              a.KeyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                a.Email,
		"client_id":                   a.ClientID,
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + url.PathEscape(a.Email),
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	return b
}

// Issued describes a token the server handed out.
type Issued struct {
	Account, Subject, Scope string
	Expiry                  time.Time
}

type account struct {
	pub       *rsa.PublicKey
	keyID     string
	delegated map[string]bool // scopes granted domain-wide delegation
}

// The embedded plumbing gives Server SetLifetime, SetClock, FailNext,
// Requests, Valid, Lookup and Revoke.
type (
	script = oauthtest.Script[Request, Failure]
	tokens = oauthtest.Tokens[Issued]
)

// Server is the stand-in. Its zero value is not usable; call New.
type Server struct {
	URL string // base URL, e.g. http://127.0.0.1:PORT

	script
	tokens

	mu       sync.Mutex
	accounts map[string]*account // by client_email
	users    map[string]bool
}

// New starts a server on a loopback port, closed when t ends. Tokens live one
// hour, as Google's do, unless SetLifetime says otherwise.
func New(t testing.TB) *Server {
	s := &Server{accounts: map[string]*account{}, users: map[string]bool{}}
	s.SetLifetime(time.Hour)
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// TokenURL is the token endpoint, the assertion's expected "aud".
func (s *Server) TokenURL() string { return s.URL + "/token" }

// NewAccount generates a key pair for a service account named email and
// registers its public key. The account has no delegation until Delegate.
func (s *Server) NewAccount(t testing.TB, email string) *Account {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid := make([]byte, 20)
	rand.Read(kid)
	a := &Account{Email: email, ClientID: "10" + strconv.FormatInt(time.Now().UnixNano(), 10),
		KeyID: fmt.Sprintf("%x", kid), ProjectID: "postern-test", Key: k}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[email] = &account{pub: &k.PublicKey, keyID: a.KeyID, delegated: map[string]bool{}}
	return a
}

// KeyJSON is a's key file pointing at this server.
func (s *Server) KeyJSON(a *Account) []byte { return a.JSON(s.TokenURL()) }

// Delegate grants a domain-wide delegation for scopes, as a Workspace
// administrator does under Security > API controls.
func (s *Server) Delegate(a *Account, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range scopes {
		s.accounts[a.Email].delegated[sc] = true
	}
}

// AddUser adds a mailbox to the domain.
func (s *Server) AddUser(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToLower(email)] = true
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	req := Request{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"),
		Header: r.Header.Clone(), Form: form}
	hdr, claims, signed, sig, decodeErr := decode(form.Get("assertion"))
	req.JWTHeader, req.Claims = hdr, claims
	if f, ok := s.Record(req); ok {
		fail(w, f)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); ct != "application/x-www-form-urlencoded" {
		fail(w, Failure{Status: http.StatusBadRequest, Error: "invalid_request", Description: "Required parameter is missing: grant_type"})
		return
	}
	if gt := form.Get("grant_type"); gt != GrantType {
		fail(w, Failure{Status: http.StatusBadRequest, Error: "unsupported_grant_type", Description: "Invalid grant_type: " + gt})
		return
	}
	if decodeErr != "" {
		fail(w, Failure{Status: http.StatusBadRequest, Error: "invalid_grant", Description: decodeErr})
		return
	}
	a := s.accounts[claims.Iss]
	if a == nil {
		fail(w, Failure{Status: http.StatusBadRequest, Error: "invalid_grant", Description: "Invalid grant: account not found"})
		return
	}
	h := sha256.Sum256([]byte(signed))
	if hdr["alg"] != "RS256" || (hdr["kid"] != "" && hdr["kid"] != a.keyID) ||
		rsa.VerifyPKCS1v15(a.pub, crypto.SHA256, h[:], sig) != nil {
		fail(w, BadSignature())
		return
	}
	now := s.Now()
	if claims.Aud != s.TokenURL() {
		fail(w, Failure{Status: http.StatusBadRequest, Error: "invalid_grant",
			Description: "Invalid JWT: Failed audience check. The expected value was " + s.TokenURL()})
		return
	}
	// Google allows an hour at most, and a little clock skew.
	if claims.Exp-claims.Iat > 3600 || claims.Exp <= now.Unix() || claims.Iat > now.Add(5*time.Minute).Unix() {
		fail(w, Failure{Status: http.StatusBadRequest, Error: "invalid_grant",
			Description: "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."})
		return
	}
	if claims.Scope == "" {
		fail(w, Failure{Status: http.StatusBadRequest, Error: "invalid_scope", Description: "Invalid OAuth scope or ID token audience provided."})
		return
	}
	if claims.Sub != "" {
		if !s.users[strings.ToLower(claims.Sub)] {
			fail(w, UnknownUser())
			return
		}
		for sc := range strings.FieldsSeq(claims.Scope) {
			if !a.delegated[sc] {
				fail(w, NotDelegated())
				return
			}
		}
	}

	tok, life := s.Issue("ya29.", 48, func(exp time.Time) Issued {
		return Issued{Account: claims.Iss, Subject: claims.Sub, Scope: claims.Scope, Expiry: exp}
	})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok, "expires_in": int(life/time.Second) - 1, "token_type": "Bearer",
	})
}

// decode splits a compact JWS; problems come back as Google's description.
func decode(jwt string) (hdr map[string]string, c Claims, signed string, sig []byte, problem string) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, c, "", nil, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &hdr) != nil || json.Unmarshal(cb, &c) != nil {
		return hdr, c, "", nil, "Invalid JWT Signature."
	}
	return hdr, c, parts[0] + "." + parts[1], sig, ""
}

func fail(w http.ResponseWriter, f Failure) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Error == "" {
		w.WriteHeader(f.Status)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(f.Status)
	json.NewEncoder(w).Encode(map[string]string{"error": f.Error, "error_description": f.Description})
}
