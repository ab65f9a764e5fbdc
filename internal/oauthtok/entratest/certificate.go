package entratest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AssertionType is the only client_assertion_type Entra takes.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clockSkew is how far an assertion's nbf and exp may be off the server's
// clock, as token validation in Microsoft's identity stack allows.
const clockSkew = 5 * time.Minute

// Assertion is a client assertion as it arrived, decoded but not verified.
type Assertion struct {
	Header map[string]any
	Claims map[string]any
}

func decodeAssertion(s string) *Assertion {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil
	}
	var a Assertion
	for i, dst := range []*map[string]any{&a.Header, &a.Claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			return nil
		}
	}
	return &a
}

// AddCertificate adds cert to the certificate credentials of clientID in
// tenant (creating the registration, without a secret, if needed), as
// uploading it under "Certificates & secrets" does. Assertions are then
// verified as Entra does: signature (RS256 or PS256) by a registered
// certificate named by x5t#S256 (or the SHA-1 x5t), the certificate valid
// now, aud the tenant's token URL on this server, iss and sub the client_id,
// exp after and nbf not after the server's clock (SetClock), give or take
// five minutes.
func (s *Server) AddCertificate(tenant, clientID string, cert *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[clientID]
	if !ok {
		a.tenant = tenant
	}
	a.certs = append(a.certs, cert)
	s.apps[clientID] = a
}

// CertificateNotRegistered is the answer to an assertion whose thumbprint
// (hex, as Entra prints it) names no certificate of the app.
func CertificateNotRegistered(clientID, thumbprint string) Failure {
	return Failure{
		Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{700027},
		Description: "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '" + thumbprint +
			"', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '" + clientID + "'.]",
	}
}

// BadAssertionSignature is the answer to an assertion the named
// certificate's key did not sign.
func BadAssertionSignature(thumbprint string, cert *x509.Certificate) Failure {
	return Failure{
		Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{700027},
		Description: "AADSTS700027: Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '" + thumbprint + "', Found key '" + keySpan(cert) + "']",
	}
}

// AssertionTimeRange is the answer to an assertion that is expired or not
// valid yet.
func AssertionTimeRange(now, nbf, exp time.Time) Failure {
	f := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }
	return Failure{
		Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{700024},
		Description: "AADSTS700024: Client assertion is not within its valid time range. Current time: " + f(now) + ", assertion valid from " + f(nbf) + ", expiry time of assertion " + f(exp) + ".",
	}
}

func keySpan(c *x509.Certificate) string {
	return "Start=" + c.NotBefore.UTC().Format("01/02/2006 15:04:05") + ", End=" + c.NotAfter.UTC().Format("01/02/2006 15:04:05")
}

// checkAssertion verifies a client assertion for the app a. s.mu is held.
func (s *Server) checkAssertion(form url.Values, a app, tenant, clientID string) (Failure, bool) {
	if t := form.Get("client_assertion_type"); t != AssertionType {
		return Failure{Status: http.StatusBadRequest, Error: "invalid_request", Codes: []int{900144},
			Description: "AADSTS900144: The request body must contain the following parameter: 'client_assertion_type'."}, false
	}
	malformed := Failure{Status: http.StatusBadRequest, Error: "invalid_request", Codes: []int{50027},
		Description: "AADSTS50027: JWT token is invalid or malformed."}
	raw := form.Get("client_assertion")
	dec := decodeAssertion(raw)
	if dec == nil {
		return malformed, false
	}

	// The thumbprint picks the key, as Entra looks keys up by it.
	var (
		cert  *x509.Certificate
		print string
	)
	if v, ok := dec.Header["x5t#S256"].(string); ok {
		print = thumbHex(v)
		for _, c := range a.certs {
			if sum := sha256.Sum256(c.Raw); base64.RawURLEncoding.EncodeToString(sum[:]) == v {
				cert = c
			}
		}
	} else if v, ok := dec.Header["x5t"].(string); ok {
		print = thumbHex(v)
		for _, c := range a.certs {
			if sum := sha1.Sum(c.Raw); base64.RawURLEncoding.EncodeToString(sum[:]) == v {
				cert = c
			}
		}
	}
	if cert == nil {
		return CertificateNotRegistered(clientID, print), false
	}
	now := s.Now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return Failure{Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{700027},
			Description: "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '" + print + "', Found key '" + keySpan(cert) + "']"}, false
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return BadAssertionSignature(print, cert), false
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return pub, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return BadAssertionSignature(print, cert), false
	case err != nil:
		return malformed, false
	}

	if aud, _ := claims.GetAudience(); len(aud) != 1 || aud[0] != s.TokenURL(tenant) {
		return Failure{Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{700023},
			Description: "AADSTS700023: Client assertion audience claim does not match Realm issuer."}, false
	}
	iss, _ := claims.GetIssuer()
	sub, _ := claims.GetSubject()
	if iss != clientID || sub != clientID {
		return Failure{Status: http.StatusUnauthorized, Error: "invalid_client", Codes: []int{700021},
			Description: "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter."}, false
	}
	var nbf, exp time.Time
	if t, _ := claims.GetNotBefore(); t != nil {
		nbf = t.Time
	}
	if t, _ := claims.GetExpirationTime(); t != nil {
		exp = t.Time
	}
	if exp.IsZero() || !now.Before(exp.Add(clockSkew)) || now.Add(clockSkew).Before(nbf) {
		return AssertionTimeRange(now, nbf, exp), false
	}
	return Failure{}, true
}

// thumbHex turns a base64url thumbprint into the hex Entra prints.
func thumbHex(v string) string {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return v
	}
	return fmt.Sprintf("%X", b)
}

// NewCertificate makes a self-signed certificate and its RSA key, valid from
// 2000 until a year from now (so a test's fake clock falls inside), and
// returns PEM holding the certificate then the key (PKCS#8), ready for
// oauthtok.Entra.Certificate, and the certificate for AddCertificate.
func NewCertificate(t testing.TB) (pemBytes []byte, cert *x509.Certificate) {
	t.Helper()
	cert, key := NewCertificateKey(t, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Now().AddDate(1, 0, 0))
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	return append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...), cert
}

// NewCertificateKey makes a self-signed certificate valid from notBefore to
// notAfter and its 2048-bit RSA key, for tests that encode them themselves.
func NewCertificateKey(t testing.TB, notBefore, notAfter time.Time) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "postern test app"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
