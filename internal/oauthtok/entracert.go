package oauthtok

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ClientAssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 section 2.2), as Entra certificate credentials use it.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a client assertion is valid. Microsoft asks
// for 5 to 10 minutes; it is only presented once, right after signing.
const assertionLifetime = 10 * time.Minute

// certCredential is an app's certificate and the RSA key it certifies.
type certCredential struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
}

// errNotYetValid marks a certificate whose validity starts in the future:
// unlike the other PEM problems, waiting fixes it.
var errNotYetValid = errors.New("certificate is not valid yet")

// parseCertificatePEM finds the private key and the certificate for it in
// PEM, in any order; other certificates (a chain) are ignored. Errors name the
// problem and the fix but never carry key material or the library's parse
// error for a key, which could quote bytes of it.
func parseCertificatePEM(data []byte, now time.Time) (certCredential, error) {
	// PEM pasted into an environment variable or a JSON secret often arrives
	// with its line breaks as literal "\n".
	if !bytes.Contains(data, []byte("\n")) && bytes.Contains(data, []byte(`\n`)) {
		data = bytes.ReplaceAll(data, []byte(`\n`), []byte("\n"))
	}
	var (
		certs []*x509.Certificate
		key   *rsa.PrivateKey
	)
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		// Legacy "Proc-Type: 4,ENCRYPTED" keys (deprecated API) are detected
		// only to be refused with a clear message.
		if x509.IsEncryptedPEMBlock(b) || b.Type == "ENCRYPTED PRIVATE KEY" {
			return certCredential{}, errors.New("the private key is encrypted; store it unencrypted (PKCS#1 or PKCS#8) in the secret store, which protects it")
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return certCredential{}, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
			}
			certs = append(certs, c)
		case "RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY":
			if key != nil {
				return certCredential{}, errors.New("more than one private key; keep only the key of the app's certificate")
			}
			k, err := parseRSAKey(b)
			if err != nil {
				return certCredential{}, err
			}
			key = k
		}
	}
	switch {
	case len(certs) == 0 && key == nil:
		return certCredential{}, errors.New("no PEM certificate or private key found; expect a CERTIFICATE block and its PRIVATE KEY or RSA PRIVATE KEY block (a .pfx converts with: openssl pkcs12 -in app.pfx -nodes -out app.pem)")
	case len(certs) == 0:
		return certCredential{}, errors.New("no certificate (PEM CERTIFICATE block) beside the private key; add the certificate uploaded to the app registration")
	case key == nil:
		return certCredential{}, errors.New("no private key (PEM PRIVATE KEY or RSA PRIVATE KEY block) beside the certificate; add the certificate's key")
	}
	var cert *x509.Certificate
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && key.PublicKey.Equal(pub) {
			cert = c
			break
		}
	}
	if cert == nil {
		return certCredential{}, fmt.Errorf("the private key does not match the certificate (SHA-1 thumbprint %s); put the certificate and the key it was issued for together", thumbprintSHA1(certs[0]))
	}
	switch {
	case now.After(cert.NotAfter):
		return certCredential{}, fmt.Errorf("certificate %s expired on %s; upload a new certificate to the app registration and store it with its key",
			thumbprintSHA1(cert), cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return certCredential{}, fmt.Errorf("%w: certificate %s is valid from %s", errNotYetValid, thumbprintSHA1(cert), cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return certCredential{cert: cert, key: key}, nil
}

func parseRSAKey(b *pem.Block) (*rsa.PrivateKey, error) {
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("the private key is a %s; Entra certificate credentials need an RSA key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("the %s block is not a valid key; export it again as PKCS#1 or PKCS#8", b.Type)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is %T, not RSA; Entra certificate credentials need an RSA key", k)
	}
	return rk, nil
}

// thumbprintSHA1 is the certificate's thumbprint as the Entra portal shows it
// (hex SHA-1 of the DER), to name a certificate in errors; it is public.
func thumbprintSHA1(c *x509.Certificate) string {
	return fmt.Sprintf("%X", sha1.Sum(c.Raw)) // #nosec G401 -- an identifier, not a signature
}

// assertion signs a client assertion for clientID presented at tokenURL.
// Following Microsoft's certificate credentials reference (and MSAL, which
// does the same for Entra authorities) it is PS256 with the certificate's
// SHA-256 thumbprint in x5t#S256; Entra also takes RS256 and the SHA-1 x5t,
// which the reference no longer recommends.
func (c certCredential) assertion(clientID, tokenURL string, now time.Time) (string, error) {
	tp := sha256.Sum256(c.cert.Raw)
	// jti: a random (version 4) GUID, as Microsoft's reference shows it.
	var u [16]byte
	rand.Read(u[:])
	u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
	tok := jwt.NewWithClaims(jwt.SigningMethodPS256, jwt.MapClaims{
		"aud": tokenURL,
		"iss": clientID,
		"sub": clientID,
		"jti": fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:]),
		"nbf": now.Unix(),
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
	})
	tok.Header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(tp[:])
	s, err := tok.SignedString(c.key)
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return s, nil
}
