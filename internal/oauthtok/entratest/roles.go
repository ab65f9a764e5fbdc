package entratest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// JWTServer is the stand-in with access tokens shaped as Entra issues them
// for Microsoft Graph and Exchange Online: a JWT whose payload names the
// resource (aud), the tenant (tid), the app (appid) and the application
// permissions an administrator granted it (roles, absent when there are
// none). Grants are set per app and resource with Grant. The signature is
// random bytes: Microsoft documents these tokens as opaque to clients, which
// must not validate them, so nothing here checks it.
//
// It is Server behind a loopback front that rewrites the token answer;
// Requests, FailNext and the rest are Server's, and Valid, Lookup and
// Revoke take the JWTs this front handed out.
type JWTServer struct {
	*Server

	mu    sync.Mutex
	roles map[[2]string][]string // (client_id, resource) -> roles
	jwts  map[string]string      // JWT -> the token Server issued
}

// NewJWT starts a JWTServer on loopback ports, closed when t ends.
func NewJWT(t testing.TB) *JWTServer {
	s := &JWTServer{Server: New(t), roles: map[[2]string][]string{}, jwts: map[string]string{}}
	inner := s.Server.URL
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.forward(w, r, inner)
	}))
	t.Cleanup(front.Close)
	// TokenURL and every client now reach the front.
	s.Server.URL = front.URL
	return s
}

// Grant sets the application permissions (e.g. "Mail.Send",
// "SMTP.SendAsApp") clientID holds on resource (e.g.
// "https://graph.microsoft.com", "https://outlook.office365.com"), as
// admin consent does; tokens issued from now on carry them.
func (s *JWTServer) Grant(clientID, resource string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[[2]string{clientID, resource}] = roles
}

// Lookup returns what a valid token (a JWT from this server) was issued for.
func (s *JWTServer) Lookup(token string) (Issued, bool) {
	s.mu.Lock()
	inner, ok := s.jwts[token]
	s.mu.Unlock()
	if !ok {
		return Issued{}, false
	}
	return s.Server.Lookup(inner)
}

// Valid reports whether token was issued here and is still valid.
func (s *JWTServer) Valid(token string) bool {
	_, ok := s.Lookup(token)
	return ok
}

// Revoke makes token invalid.
func (s *JWTServer) Revoke(token string) {
	s.mu.Lock()
	inner := s.jwts[token]
	s.mu.Unlock()
	s.Server.Revoke(inner)
}

func (s *JWTServer) forward(w http.ResponseWriter, r *http.Request, inner string) {
	body, _ := io.ReadAll(r.Body)
	req, err := http.NewRequestWithContext(r.Context(), r.Method, inner+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		out = s.rewrite(out)
	}
	for k, v := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
}

// rewrite replaces the access token of a token answer with a JWT.
func (s *JWTServer) rewrite(body []byte) []byte {
	var ans map[string]any
	if json.Unmarshal(body, &ans) != nil {
		return body
	}
	tok, _ := ans["access_token"].(string)
	is, ok := s.Server.Lookup(tok)
	if !ok {
		return body
	}
	resource := strings.TrimSuffix(is.Scope, "/.default")
	s.mu.Lock()
	defer s.mu.Unlock()
	roles := s.roles[[2]string{is.ClientID, resource}]
	now := s.Now()
	claims := map[string]any{
		"aud": resource, "iss": "https://sts.windows.net/" + is.Tenant + "/",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": is.Expiry.Unix(),
		"appid": is.ClientID, "appidacr": "1", "idtyp": "app", "tid": is.Tenant,
		"oid": uuid(), "sub": uuid(), "ver": "1.0",
	}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	hdr, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "RS256", "kid": "entratest"})
	pay, _ := json.Marshal(claims)
	sig := make([]byte, 256)
	rand.Read(sig)
	enc := base64.RawURLEncoding.EncodeToString
	jwt := enc(hdr) + "." + enc(pay) + "." + enc(sig)
	s.jwts[jwt] = tok
	ans["access_token"] = jwt
	out, err := json.Marshal(ans)
	if err != nil {
		return body
	}
	return out
}
