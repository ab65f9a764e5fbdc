package dkimsign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	rsaPriv := rsaKey().signer.(*rsa.PrivateKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rsaPriv)
	edPEM, err := edKey().MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		pem  []byte
		alg  string
		bits int
	}{
		"RSA PKCS#1":     {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaPriv)}), RSA, 2048},
		"RSA PKCS#8":     {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), RSA, 2048},
		"Ed25519 PKCS#8": {edPEM, Ed25519, 256},
		"text around":    {append(append([]byte("# dkim key\n"), edPEM...), "trailer\n"...), Ed25519, 256},
	} {
		k, err := ParseKey(c.pem)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if k.Algorithm() != c.alg || k.Bits() != c.bits {
			t.Errorf("%s: %s %d", name, k.Algorithm(), k.Bits())
		}
		if k.PublicRecord() != map[string]*Key{RSA: rsaKey(), Ed25519: edKey()}[c.alg].PublicRecord() {
			t.Errorf("%s: another public key", name)
		}
	}
}

// Refusals say what is wrong and never quote the key.
func TestParseKeyRefuses(t *testing.T) {
	t.Parallel()
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	edPEM, _ := edKey().MarshalPEM()
	edBlock, _ := pem.Decode(edPEM)
	corrupt := bytes.Clone(edBlock.Bytes)
	corrupt[len(corrupt)-40] ^= 0xff
	corrupt = corrupt[:len(corrupt)-3]
	pub, _ := x509.MarshalPKIXPublicKey(edKey().signer.Public())
	for name, c := range map[string]struct {
		pem  []byte
		want string
	}{
		"empty":      {nil, "no PEM block"},
		"not PEM":    {[]byte("p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"), "no PEM block"},
		"RSA 1024":   {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}), "at least 2048"},
		"ECDSA":      {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), "ECDSA keys cannot sign DKIM"},
		"public key": {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), `"PUBLIC KEY" is not a private key`},
		"encrypted":  {pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: edBlock.Bytes}), "encrypted"},
		"legacy encrypted": {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
			Bytes: x509.MarshalPKCS1PrivateKey(rsaKey().signer.(*rsa.PrivateKey))}), "encrypted"},
		"corrupt PKCS8": {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: corrupt}), "not a valid PKCS#8 key"},
		"PKCS8 as 1":    {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: edBlock.Bytes}), "not a valid PKCS#1 key"},
	} {
		_, err := ParseKey(c.pem)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
			continue
		}
		if leaks(err.Error(), c.pem) {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
}

// leaks reports whether s holds any 12 bytes of the PEM body (its base64).
func leaks(s string, pemBytes []byte) bool {
	var b64 strings.Builder
	for _, line := range strings.Split(string(pemBytes), "\n") {
		if !strings.HasPrefix(line, "-----") {
			b64.WriteString(line)
		}
	}
	body := b64.String()
	for i := 0; i+12 <= len(body); i++ {
		if strings.Contains(s, body[i:i+12]) {
			return true
		}
	}
	return false
}

// A Key printed or logged by mistake shows its kind only.
func TestKeyDoesNotPrint(t *testing.T) {
	t.Parallel()
	for _, k := range []*Key{rsaKey(), edKey()} {
		p, _ := k.MarshalPEM()
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "key", k, "sel", Selector{"example.com", "s", k})
		for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v %#v %s %x %q", k, k, k, k, k), fmt.Sprintf("%+v", Selector{Key: k}), logged.String()} {
			if leaks(s, p) || !strings.Contains(s, "dkimsign.Key("+k.Algorithm()) {
				t.Errorf("printed as %s", s)
			}
		}
	}
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		alg  string
		bits int
		ok   bool
	}{
		{RSA, 0, true}, {RSA, 1024, false}, {RSA, 8192, false}, {Ed25519, 0, true}, {Ed25519, 2048, false}, {"ecdsa", 0, false},
	} {
		k, err := GenerateKey(c.alg, c.bits)
		if (err == nil) != c.ok {
			t.Errorf("%s %d: %v", c.alg, c.bits, err)
			continue
		}
		if err != nil {
			continue
		}
		p, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseKey(p)
		if err != nil || back.PublicRecord() != k.PublicRecord() {
			t.Errorf("%s: PEM does not read back: %v", c.alg, err)
		}
	}
}

var quoted = regexp.MustCompile(`"([^"]*)"`)

// The TXT record is cut into strings of at most 255 bytes, which joined
// give a record the verifier reads.
func TestTXTRecord(t *testing.T) {
	t.Parallel()
	big, err := GenerateKey(RSA, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Key{edKey(), rsaKey(), big} {
		line := TXTRecord("Example.COM.", "Sel1", k)
		prefix := "sel1._domainkey.example.com. IN TXT "
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("%s", line)
		}
		var joined string
		rest := strings.TrimPrefix(line, prefix)
		parts := quoted.FindAllStringSubmatch(rest, -1)
		if strings.Join(quoted.FindAllString(rest, -1), " ") != rest {
			t.Fatalf("not a list of quoted strings: %s", rest)
		}
		for _, q := range parts {
			if len(q[1]) > 255 {
				t.Fatalf("string of %d bytes", len(q[1]))
			}
			joined += q[1]
		}
		if joined != k.PublicRecord() {
			t.Fatalf("joined %q, want %q", joined, k.PublicRecord())
		}
		if want := (len(joined) + 254) / 255; len(parts) != want {
			t.Errorf("%d strings for %d bytes", len(parts), len(joined))
		}
		sel := Selector{"example.com", "sel1", k}
		out, _ := sign(t, newSigner(t, Options{}, sel), lfMessage)
		if vs := dkimsignVerify(t, out, "sel1._domainkey.example.com", joined); vs != nil {
			t.Errorf("%s: %v", k, vs)
		}
	}
	if !strings.Contains(edKey().PublicRecord(), "k=ed25519; p=") || !strings.HasPrefix(rsaKey().PublicRecord(), "v=DKIM1; k=rsa; p=MIIB") {
		t.Errorf("records %q %q", edKey().PublicRecord(), rsaKey().PublicRecord())
	}
}
