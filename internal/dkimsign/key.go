package dkimsign

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Key algorithms, as the k= tag of the DNS record names them.
const (
	RSA     = "rsa"
	Ed25519 = "ed25519"
)

// MinRSABits is the smallest RSA key accepted. RFC 8301 allows 1024, but
// 1024-bit keys are factorable in reach of a motivated attacker and major
// receivers treat them as weak; 2048 is what they expect.
const MinRSABits = 2048

// MaxRSABits bounds the RSA key size: signing cost grows with the cube of
// it, and a 4096-bit public key already needs several TXT strings.
const MaxRSABits = 4096

// Key is a DKIM private key: RSA (2048 to 4096 bits) or Ed25519. Its
// String, GoString and LogValue name only the algorithm and size, so a Key
// printed or logged by mistake gives nothing away.
type Key struct {
	signer crypto.Signer
	alg    string
	bits   int
}

// ParseKey reads a private key from PEM: "PRIVATE KEY" (PKCS#8, RSA or
// Ed25519) or "RSA PRIVATE KEY" (PKCS#1). The first PEM block is used. Its
// errors describe the problem but never quote the input.
func ParseKey(pemBytes []byte) (*Key, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("dkim key: no PEM block found (want a PEM \"PRIVATE KEY\" block, as `gateway dkim-keygen` or `openssl genpkey` writes)")
	}
	// PKCS#8 encryption, or OpenSSL's legacy PEM encryption (a Proc-Type header).
	if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("dkim key: the PEM key is encrypted; give it unencrypted (keep it in a secret store instead)")
	}
	var priv any
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			// x509's message can carry ASN.1 details of the input; ours does not.
			return nil, errors.New("dkim key: PRIVATE KEY block is not a valid PKCS#8 key")
		}
		priv = k
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("dkim key: RSA PRIVATE KEY block is not a valid PKCS#1 key")
		}
		priv = k
	default:
		return nil, fmt.Errorf("dkim key: PEM block %q is not a private key (want PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	return newKey(priv)
}

func newKey(priv any) (*Key, error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		bits := k.N.BitLen()
		if bits < MinRSABits {
			return nil, fmt.Errorf("dkim key: RSA key has %d bits; DKIM keys need at least %d", bits, MinRSABits)
		}
		if bits > MaxRSABits {
			return nil, fmt.Errorf("dkim key: RSA key has %d bits; at most %d are accepted", bits, MaxRSABits)
		}
		return &Key{signer: k, alg: RSA, bits: bits}, nil
	case ed25519.PrivateKey:
		return &Key{signer: k, alg: Ed25519, bits: 256}, nil
	default:
		return nil, fmt.Errorf("dkim key: %s keys cannot sign DKIM; use RSA or Ed25519", keyKind(priv))
	}
}

func keyKind(priv any) string {
	s := fmt.Sprintf("%T", priv) // a type name only, e.g. *ecdsa.PrivateKey
	s = strings.TrimPrefix(s, "*")
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	return strings.ToUpper(s)
}

// GenerateKey makes a new key: alg RSA with bits (0 means 2048), or
// Ed25519 (bits must be 0 or 256).
func GenerateKey(alg string, bits int) (*Key, error) {
	switch alg {
	case RSA:
		if bits == 0 {
			bits = MinRSABits
		}
		if bits < MinRSABits || bits > MaxRSABits {
			return nil, fmt.Errorf("dkim key: RSA bits must be between %d and %d, not %d", MinRSABits, MaxRSABits, bits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("dkim key: generate RSA: %w", err)
		}
		return newKey(k)
	case Ed25519:
		if bits != 0 && bits != 256 {
			return nil, fmt.Errorf("dkim key: Ed25519 keys have 256 bits, not %d", bits)
		}
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("dkim key: generate Ed25519: %w", err)
		}
		return newKey(k)
	}
	return nil, fmt.Errorf("dkim key: algorithm %q: want %s or %s", alg, RSA, Ed25519)
}

// Algorithm is RSA or Ed25519.
func (k *Key) Algorithm() string { return k.alg }

// Bits is the key size.
func (k *Key) Bits() int { return k.bits }

// MarshalPEM encodes the private key as a PKCS#8 "PRIVATE KEY" PEM block,
// which ParseKey reads back.
func (k *Key) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		return nil, fmt.Errorf("dkim key: encode: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// PublicRecord is the TXT record value a verifier fetches from
// SELECTOR._domainkey.DOMAIN: "v=DKIM1; k=rsa; p=...". For RSA p= is the
// DER SubjectPublicKeyInfo, as openssl and every verifier read it; for
// Ed25519 it is the raw 32-byte key (RFC 8463 section 4.2).
func (k *Key) PublicRecord() string {
	var p []byte
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			panic("dkimsign: marshal RSA public key: " + err.Error()) // cannot happen for a valid key
		}
		p = der
	case ed25519.PublicKey:
		p = pub
	}
	return "v=DKIM1; k=" + k.alg + "; p=" + base64.StdEncoding.EncodeToString(p)
}

// TXTRecord is the zone-file line to publish k for domain and selector:
//
//	SELECTOR._domainkey.DOMAIN. IN TXT "v=DKIM1; k=rsa; p=..." "..."
//
// The domain is written in A-labels (xn--), as DNS holds it. The value is
// cut into strings of at most 255 bytes, the most one DNS
// character-string holds (RFC 1035 section 3.3); verifiers join them.
func TXTRecord(domain, selector string, k *Key) string {
	v := k.PublicRecord()
	var b strings.Builder
	d, err := normDomain(domain)
	if err != nil {
		d = strings.TrimSuffix(strings.ToLower(domain), ".") // CheckSelector says what is wrong with it
	}
	b.WriteString(strings.ToLower(selector) + "._domainkey." + d + ". IN TXT")
	for len(v) > 0 {
		n := min(len(v), 255)
		b.WriteString(" " + strconv.Quote(v[:n])) // the record is base64 and ASCII tags: nothing to escape but quotes
		v = v[n:]
	}
	return b.String()
}

func (k *Key) String() string             { return "dkimsign.Key(" + k.alg + "-" + strconv.Itoa(k.bits) + ")" }
func (k *Key) GoString() string           { return k.String() }
func (k *Key) LogValue() slog.Value       { return slog.StringValue(k.String()) }
func (k *Key) Format(f fmt.State, _ rune) { f.Write([]byte(k.String())) }
