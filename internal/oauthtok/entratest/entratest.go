// Package entratest is a loopback stand-in for the Microsoft Entra ID v2.0
// token endpoint (POST /{tenant}/oauth2/v2.0/token, client credentials grant),
// following the published contract: form-encoded requests, JSON answers, and
// errors shaped as Entra sends them (error, AADSTS description, error_codes,
// trace and correlation ids) with Entra's status codes. Apps authenticate with
// a client secret or with a certificate (a signed client assertion, verified
// as Entra does; see AddCertificate). It records every request and remembers
// the tokens it issued so stand-ins of Graph or SMTP can check a presented
// bearer token.
package entratest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
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

// Request is one request the server received, as it arrived.
type Request struct {
	Method      string
	Path        string
	ContentType string
	Header      http.Header
	Form        url.Values // the parsed body
	// Assertion is the form's client_assertion decoded (not verified), or
	// nil when there is none or it is not a JWT.
	Assertion *Assertion
}

// Failure is a scripted error answer.
type Failure struct {
	Status      int
	RetryAfter  string // Retry-After header value, if any
	Error       string // OAuth error code, e.g. invalid_client; empty sends a bare status
	Description string // without the trace lines Entra appends
	Codes       []int  // error_codes, e.g. 7000215
}

// Throttled is Entra's 429 with a Retry-After in whole seconds.
func Throttled(after time.Duration) Failure {
	return Failure{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(int(after / time.Second))}
}

// Unavailable is a bare 503, as a gateway in front of Entra returns it.
func Unavailable() Failure { return Failure{Status: http.StatusServiceUnavailable} }

// BadSecret is the answer to a wrong client secret.
func BadSecret(clientID string) Failure {
	return Failure{
		Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{7000215},
		Description: "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + clientID + "'.",
	}
}

// UnknownApp is the answer to a client_id not registered in the tenant.
func UnknownApp(clientID, tenant string) Failure {
	return Failure{
		Status: http.StatusBadRequest, Error: "unauthorized_client", Codes: []int{700016},
		Description: "AADSTS700016: Application with identifier '" + clientID + "' was not found in the directory '" + tenant + "'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
	}
}

// NoConsent is the answer when an administrator has not consented to the app.
func NoConsent(clientID string) Failure {
	return Failure{
		Status: http.StatusBadRequest, Error: "invalid_grant", Codes: []int{65001},
		Description: "AADSTS65001: The user or administrator has not consented to use the application with ID '" + clientID + "'. Send an interactive authorization request for this user and resource.",
	}
}

// Issued describes a token the server handed out.
type Issued struct {
	Tenant, ClientID, Scope string
	Expiry                  time.Time
}

type app struct {
	tenant, secret string
	certs          []*x509.Certificate // certificate credentials (key credentials)
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

	mu   sync.Mutex
	apps map[string]app // by client_id
}

// New starts a server on a loopback port, closed when t ends. Tokens live one
// hour, as Entra's do, unless SetLifetime says otherwise.
func New(t testing.TB) *Server {
	s := &Server{apps: map[string]app{}}
	s.SetLifetime(time.Hour)
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// TokenURL is the v2.0 token endpoint for tenant on this server.
func (s *Server) TokenURL(tenant string) string {
	return s.URL + "/" + tenant + "/oauth2/v2.0/token"
}

// AddApp registers an app registration in tenant with a client secret (none
// when empty), keeping any certificates it already has.
func (s *Server) AddApp(tenant, clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[clientID]
	a.tenant, a.secret = tenant, secret
	s.apps[clientID] = a
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	if f, ok := s.Record(Request{
		Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"),
		Header: r.Header.Clone(), Form: form, Assertion: decodeAssertion(form.Get("client_assertion")),
	}); ok {
		s.fail(w, f)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tenant, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/token")
	if !ok || tenant == "" || strings.Contains(tenant, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		s.fail(w, Failure{Status: http.StatusMethodNotAllowed, Error: "invalid_request", Codes: []int{900561},
			Description: "AADSTS900561: The endpoint only accepts POST requests. Received a " + r.Method + " request."})
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); ct != "application/x-www-form-urlencoded" {
		s.fail(w, Failure{Status: http.StatusBadRequest, Error: "invalid_request", Codes: []int{900144},
			Description: "AADSTS900144: The request body must contain the following parameter: 'grant_type'."})
		return
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		s.fail(w, Failure{Status: http.StatusBadRequest, Error: "unsupported_grant_type", Codes: []int{70003},
			Description: "AADSTS70003: The app requested an unsupported grant type '" + gt + "'."})
		return
	}
	clientID := form.Get("client_id")
	a, known := s.apps[clientID]
	switch {
	case !known || a.tenant != tenant:
		s.fail(w, UnknownApp(clientID, tenant))
		return
	case form.Has("client_assertion") || form.Has("client_assertion_type"):
		if f, ok := s.checkAssertion(form, a, tenant, clientID); !ok {
			s.fail(w, f)
			return
		}
	case form.Get("client_secret") == "":
		s.fail(w, Failure{Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{7000218},
			Description: "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."})
		return
	case form.Get("client_secret") != a.secret:
		s.fail(w, BadSecret(clientID))
		return
	}
	scope := form.Get("scope")
	// Client credentials take exactly one resource's /.default scope.
	if u, err := url.Parse(scope); err != nil || u.Scheme == "" || !strings.HasSuffix(scope, "/.default") || strings.Contains(scope, " ") {
		s.fail(w, Failure{Status: http.StatusBadRequest, Error: "invalid_scope", Codes: []int{1002012},
			Description: "AADSTS1002012: The provided value for scope " + scope + " is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."})
		return
	}

	tok, life := s.Issue("", 32, func(exp time.Time) Issued {
		return Issued{Tenant: tenant, ClientID: clientID, Scope: scope, Expiry: exp}
	})
	secs := int(life / time.Second)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	json.NewEncoder(w).Encode(map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
	})
}

// fail writes f.
func (s *Server) fail(w http.ResponseWriter, f Failure) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Error == "" {
		w.WriteHeader(f.Status)
		return
	}
	trace, corr := uuid(), uuid()
	now := s.Now().UTC()
	codes := f.Codes
	if codes == nil {
		codes = []int{}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(f.Status)
	json.NewEncoder(w).Encode(map[string]any{
		"error": f.Error,
		"error_description": fmt.Sprintf("%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			f.Description, trace, corr, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":    codes,
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      "https://login.microsoftonline.com/error?code=" + codeOf(codes),
	})
}

func codeOf(codes []int) string {
	if len(codes) == 0 {
		return ""
	}
	return strconv.Itoa(codes[0])
}

func uuid() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
