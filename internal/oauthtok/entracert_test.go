package oauthtok

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/oauthtok/entratest"
	"github.com/postern/postern/internal/postern"
)

// certSetup is setup with the app authenticating by a certificate: the
// server knows the certificate, Entra reads the PEM from a holder the test
// may swap (rotation), and signs on the shared fake clock.
func certSetup(t *testing.T) (*entratest.Server, *Entra, *Cache, *clock, *pemHolder, *x509.Certificate) {
	t.Helper()
	srv := entratest.New(t)
	clk := &clock{t: time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)}
	srv.SetClock(clk.Now)
	pemBytes, cert := entratest.NewCertificate(t)
	srv.AddCertificate(tenant, client, cert)
	h := &pemHolder{pem: pemBytes}
	e := &Entra{
		Tenant: tenant, ClientID: client, Scope: ScopeGraph, TokenURL: srv.TokenURL(tenant),
		Certificate: h.Get, now: clk.Now,
	}
	return srv, e, NewCache(WithClock(clk.Now)), clk, h, cert
}

type pemHolder struct {
	mu    sync.Mutex
	pem   []byte
	reads int
}

func (h *pemHolder) Get(context.Context) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads++
	return h.pem, nil
}

func (h *pemHolder) Set(p []byte) { h.mu.Lock(); h.pem = p; h.mu.Unlock() }

func x5tS256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestCertificateExactRequest(t *testing.T) {
	srv, e, c, clk, _, cert := certSetup(t)
	// A secret configured beside the certificate is not sent.
	e.Secret = func(context.Context) (string, error) { return secret, nil }
	tok, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	if is, ok := srv.Lookup(tok.AccessToken); !ok || is.ClientID != client || is.Scope != ScopeGraph || is.Tenant != tenant {
		t.Fatalf("token %+v not issued by the server for the app", is)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/"+tenant+"/oauth2/v2.0/token" || r.ContentType != "application/x-www-form-urlencoded" || r.Header.Get("Authorization") != "" {
		t.Fatalf("request %s %s (%s), Authorization %q", r.Method, r.Path, r.ContentType, r.Header.Get("Authorization"))
	}
	var keys []string
	for k, v := range r.Form {
		if len(v) != 1 {
			t.Fatalf("form %s has %d values", k, len(v))
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"client_assertion", "client_assertion_type", "client_id", "grant_type", "scope"}; !slices.Equal(keys, want) {
		t.Fatalf("form keys %v, want %v", keys, want)
	}
	for k, want := range map[string]string{
		"grant_type": "client_credentials", "client_id": client, "scope": ScopeGraph,
		"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
	} {
		if got := r.Form.Get(k); got != want {
			t.Fatalf("%s = %q, want %q", k, got, want)
		}
	}

	a := r.Assertion
	if a == nil {
		t.Fatalf("client_assertion %q is not a JWT", r.Form.Get("client_assertion"))
	}
	wantHdr := map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": x5tS256(cert)}
	if !reflect.DeepEqual(a.Header, wantHdr) {
		t.Fatalf("header %v, want %v", a.Header, wantHdr)
	}
	now := float64(clk.Now().Unix())
	jti, _ := a.Claims["jti"].(string)
	if len(jti) != 36 {
		t.Fatalf("jti %q is not a GUID", jti)
	}
	delete(a.Claims, "jti")
	wantClaims := map[string]any{
		"aud": srv.TokenURL(tenant), "iss": client, "sub": client,
		"nbf": now, "iat": now, "exp": now + 600,
	}
	if !reflect.DeepEqual(a.Claims, wantClaims) {
		t.Fatalf("claims %v, want %v", a.Claims, wantClaims)
	}
}

func TestCertificateCacheRenewsAndRotates(t *testing.T) {
	srv, e, c, clk, h, _ := certSetup(t)
	a, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	if b, err := c.Token(t.Context(), e); err != nil || b.AccessToken != a.AccessToken || len(srv.Requests()) != 1 || h.reads != 1 {
		t.Fatalf("cached token not used: %v, %d requests, %d PEM reads", err, len(srv.Requests()), h.reads)
	}

	// The certificate is rotated: the new one is uploaded and stored; the
	// renewal 5 minutes before expiry reads and signs with it.
	newPEM, newCert := entratest.NewCertificate(t)
	srv.AddCertificate(tenant, client, newCert)
	h.Set(newPEM)
	clk.Advance(25 * time.Minute)
	b, err := c.Token(t.Context(), e)
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if b.AccessToken == a.AccessToken || !srv.Valid(b.AccessToken) || len(reqs) != 2 || h.reads != 2 {
		t.Fatalf("not renewed: %d requests, %d PEM reads", len(reqs), h.reads)
	}
	if got := reqs[1].Assertion.Header["x5t#S256"]; got != x5tS256(newCert) {
		t.Fatalf("renewal signed with %v, want the rotated certificate", got)
	}
	if reqs[0].Assertion.Claims["jti"] == reqs[1].Assertion.Claims["jti"] {
		t.Fatal("jti reused")
	}
	if got := reqs[1].Assertion.Claims["nbf"]; got != float64(clk.Now().Unix()) {
		t.Fatalf("renewal nbf %v, want now", got)
	}
}

// keyPEM encodes key as PKCS#1 or PKCS#8.
func keyPEM(t *testing.T, key *rsa.PrivateKey, pkcs1 bool) []byte {
	t.Helper()
	if pkcs1 {
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// encodePEM builds PEM for cert and key in the given order and key encoding.
func encodePEM(t *testing.T, cert *x509.Certificate, key *rsa.PrivateKey, pkcs1, keyFirst bool) []byte {
	t.Helper()
	cp := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	kp := keyPEM(t, key, pkcs1)
	if keyFirst {
		return append(kp, cp...)
	}
	return append(cp, kp...)
}

func TestCertificateKeyEncodings(t *testing.T) {
	from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC)
	cert, key := entratest.NewCertificateKey(t, from, to)
	other, _ := entratest.NewCertificateKey(t, from, to)
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw})
	for _, tc := range []struct {
		name            string
		pkcs1, keyFirst bool
		extra           []byte
		mangle          func([]byte) []byte
	}{
		{name: "PKCS#8, certificate first"},
		{name: "PKCS#8, key first", keyFirst: true},
		{name: "PKCS#1, certificate first", pkcs1: true},
		{name: "PKCS#1, key first", pkcs1: true, keyFirst: true},
		// An exported bundle: text around the blocks and an issuer's
		// certificate before the app's.
		{name: "bundle with chain", extra: append([]byte("Bag Attributes\n    friendlyName: postern\n"), chain...)},
		{name: "CRLF line ends", mangle: func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }},
		// As pasted into an environment variable or a JSON secret.
		{name: "escaped line breaks", pkcs1: true, mangle: func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte(`\n`)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, e, c, _, h, _ := certSetup(t)
			srv.AddCertificate(tenant, client, cert)
			p := append(tc.extra, encodePEM(t, cert, key, tc.pkcs1, tc.keyFirst)...)
			if tc.mangle != nil {
				p = tc.mangle(p)
			}
			h.Set(p)
			tok, err := c.Token(t.Context(), e)
			if err != nil {
				t.Fatal(err)
			}
			if !srv.Valid(tok.AccessToken) {
				t.Fatal("token not issued by the server")
			}
			if got := srv.Requests()[0].Assertion.Header["x5t#S256"]; got != x5tS256(cert) {
				t.Fatalf("signed for %v, want the certificate matching the key", got)
			}
		})
	}
}

// smallKeyPEM is a 512-bit RSA key and a certificate for it issued by a
// normal key: crypto/rsa parses such a key but refuses to sign with it (and to
// generate it, so the primes are drawn here).
func smallKeyPEM(t *testing.T) []byte {
	t.Helper()
	var k *rsa.PrivateKey
	for k == nil {
		p, err := rand.Prime(rand.Reader, 256)
		if err != nil {
			t.Fatal(err)
		}
		q, err := rand.Prime(rand.Reader, 256)
		if err != nil {
			t.Fatal(err)
		}
		n := new(big.Int).Mul(p, q)
		phi := new(big.Int).Mul(new(big.Int).Sub(p, big.NewInt(1)), new(big.Int).Sub(q, big.NewInt(1)))
		d := new(big.Int).ModInverse(big.NewInt(65537), phi)
		if d == nil || n.BitLen() != 512 {
			continue
		}
		k = &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}, D: d, Primes: []*big.Int{p, q}}
		k.Precompute()
	}
	issuer, issuerKey := entratest.NewCertificateKey(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: issuer.NotBefore, NotAfter: issuer.NotAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &k.PublicKey, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return encodePEM(t, cert, k, true, false)
}

func TestCertificateUnusablePEM(t *testing.T) {
	at := func(y int) time.Time { return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC) }
	cert, key := entratest.NewCertificateKey(t, at(2026), at(2028))
	_, otherKey := entratest.NewCertificateKey(t, at(2026), at(2028))
	expired, expiredKey := entratest.NewCertificateKey(t, at(2024), at(2025))
	good := encodePEM(t, cert, key, false, false)
	certOnly := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	keyOnly := keyPEM(t, key, true)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecSEC1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	legacyEncrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   x509.MarshalPKCS1PrivateKey(key)})
	garbledKey := append(slices.Clone(certOnly), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)[:200]})...)

	for _, tc := range []struct {
		name, pem, want string
	}{
		{"not PEM", "-----BEGIN CERT\nthis is not a certificate\n", "no PEM certificate or private key found"},
		{"empty", "", "no PEM certificate or private key found"},
		{"certificate only", string(certOnly), "no private key"},
		{"key only", string(keyOnly), "no certificate"},
		{"key of another certificate", string(certOnly) + string(keyPEM(t, otherKey, true)), "does not match"},
		{"encrypted PKCS#8", string(certOnly) + string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}})), "encrypted"},
		{"encrypted PKCS#1 (Proc-Type)", string(certOnly) + string(legacyEncrypted), "encrypted"},
		{"ECDSA key (PKCS#8)", string(certOnly) + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})), "need an RSA key"},
		{"ECDSA key (SEC 1)", string(certOnly) + string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecSEC1})), "need an RSA key"},
		{"garbled key", string(garbledKey), "not a valid key"},
		{"garbled certificate", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nonsense")})) + string(keyOnly), "certificate 1"},
		{"two keys", string(good) + string(keyOnly), "more than one private key"},
		{"expired certificate", string(encodePEM(t, expired, expiredKey, false, false)), "expired on 2025-01-01T00:00:00Z"},
		{"512-bit key", string(smallKeyPEM(t)), "sign client assertion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, e, c, _, h, _ := certSetup(t)
			h.Set([]byte(tc.pem))
			_, err := c.Token(t.Context(), e)
			if !postern.IsPermanent(err) {
				t.Fatalf("error %v not permanent", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, client) {
				t.Fatalf("error %q does not say %q for app %s", msg, tc.want, client)
			}
			// No key material in the message: no line of any PEM body,
			// and nothing base64 longer than a thumbprint.
			for _, line := range strings.Split(tc.pem, "\n") {
				if len(line) > 16 && !strings.HasPrefix(line, "-----") && !strings.Contains(line, ":") && strings.Contains(msg, line) {
					t.Fatalf("error %q quotes the PEM", msg)
				}
			}
			if len(srv.Requests()) != 0 {
				t.Fatal("an unusable certificate reached the token endpoint")
			}
		})
	}
}

func TestCertificateNotYetValidIsTemporary(t *testing.T) {
	_, e, c, clk, h, _ := certSetup(t)
	cert, key := entratest.NewCertificateKey(t, clk.Now().Add(time.Hour), clk.Now().AddDate(1, 0, 0))
	h.Set(encodePEM(t, cert, key, false, false))
	_, err := c.Token(t.Context(), e)
	if err == nil || postern.IsPermanent(err) || !strings.Contains(err.Error(), "not valid yet") {
		t.Fatalf("future certificate: %v", err)
	}
}

func TestCertificateEndpointErrors(t *testing.T) {
	for _, tc := range []struct {
		name, aadsts, text string
		mod                func(*testing.T, *entratest.Server, *Entra, *clock, *pemHolder)
		temporary          bool // this host's clock: fixed without touching the app
	}{
		{"certificate not registered", "AADSTS700027", "is not registered on application", func(t *testing.T, _ *entratest.Server, _ *Entra, _ *clock, h *pemHolder) {
			p, _ := entratest.NewCertificate(t) // a good pair the app does not know
			h.Set(p)
		}, false},
		{"app has only a secret", "AADSTS700027", "is not registered on application", func(t *testing.T, s *entratest.Server, e *Entra, _ *clock, _ *pemHolder) {
			e.ClientID = "99999999-0000-0000-0000-000000000000"
			s.AddApp(tenant, e.ClientID, secret)
		}, false},
		{"host clock 20 minutes slow", "AADSTS700024", "not within its valid time range", func(_ *testing.T, _ *entratest.Server, e *Entra, clk *clock, _ *pemHolder) {
			e.now = func() time.Time { return clk.Now().Add(-20 * time.Minute) }
		}, true},
		{"host clock 20 minutes fast", "AADSTS700024", "not within its valid time range", func(_ *testing.T, _ *entratest.Server, e *Entra, clk *clock, _ *pemHolder) {
			e.now = func() time.Time { return clk.Now().Add(20 * time.Minute) }
		}, true},
		{"token URL the endpoint does not call its own", "AADSTS700023", "audience", func(_ *testing.T, s *entratest.Server, e *Entra, _ *clock, _ *pemHolder) {
			// The assertion's aud is the URL it is posted to; reaching the
			// endpoint under another name breaks it, as at Entra.
			e.TokenURL = strings.Replace(s.TokenURL(tenant), "127.0.0.1", "localhost", 1)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, e, c, clk, h, _ := certSetup(t)
			tc.mod(t, srv, e, clk, h)
			_, err := c.Token(t.Context(), e)
			if postern.IsPermanent(err) == tc.temporary {
				t.Fatalf("error %v: permanent %v, want %v", err, postern.IsPermanent(err), !tc.temporary)
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("error %T %v", err, err)
			}
			if te.Code == "" || te.ProviderCode != tc.aadsts || te.TraceID == "" || !strings.Contains(te.Description, tc.text) {
				t.Fatalf("error %+v, want %s %q", te, tc.aadsts, tc.text)
			}
			if len(srv.Requests()) != 1 {
				t.Fatalf("%d requests, want 1", len(srv.Requests()))
			}
		})
	}
}

func TestCertificateSourceError(t *testing.T) {
	_, e, c, _, _, _ := certSetup(t)
	boom := errors.New("secretsmanager: throttled")
	e.Certificate = func(context.Context) ([]byte, error) { return nil, boom }
	if _, err := c.Token(t.Context(), e); !errors.Is(err, boom) || postern.IsPermanent(err) {
		t.Fatalf("source error: %v", err)
	}
	perm := postern.Permanent(errors.New("file /etc/postern/app.pem: no such file"))
	e.Certificate = func(context.Context) ([]byte, error) { return nil, perm }
	if _, err := c.Token(t.Context(), e); !errors.Is(err, perm) || !postern.IsPermanent(err) {
		t.Fatalf("permanent source error: %v", err)
	}
}

func TestNoCredential(t *testing.T) {
	e := &Entra{Tenant: tenant, ClientID: client, Scope: ScopeGraph, TokenURL: "http://127.0.0.1:1/unused"}
	if _, err := e.Fetch(t.Context()); !postern.IsPermanent(err) || !strings.Contains(err.Error(), "no client secret or certificate") {
		t.Fatalf("no credential: %v", err)
	}
}
