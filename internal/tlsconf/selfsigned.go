package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postern/postern/internal/atomicfile"
)

// Names of the generated files inside Options.SelfSignedDir. The
// certificate is world-readable so it can be handed to devices to pin.
const (
	selfSignedCertName = "selfsigned.crt"
	selfSignedKeyName  = "selfsigned.key"
	selfSignedValidity = 365 * 24 * time.Hour
)

// selfSigned returns the kept self-signed certificate when it still suits
// (names match, more than 30 days left), or makes and keeps a new one.
func (m *Manager) selfSigned() (*tls.Certificate, error) {
	host := normalizeHost(m.opts.Hostname)
	dir := m.opts.SelfSignedDir
	if dir != "" {
		cert, err := m.loadSelfSigned(dir, host)
		if err == nil {
			return cert, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			m.log.Info("tls generating a self-signed certificate", slog.String("dir", dir))
		} else {
			m.log.Warn("tls replacing the kept self-signed certificate", slog.String("dir", dir), slog.String("reason", err.Error()))
		}
	}
	certPEM, keyPEM, err := generateSelfSigned(host, m.now())
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := keepSelfSigned(dir, certPEM, keyPEM); err != nil {
			return nil, err
		}
	}
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: load generated certificate: %w", err)
	}
	return cert, nil
}

// loadSelfSigned reads the kept pair and says why it cannot be reused.
func (m *Manager) loadSelfSigned(dir, host string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, selfSignedCertName))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, selfSignedKeyName))
	if err != nil {
		return nil, err
	}
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf := cert.Leaf
	if left := leaf.NotAfter.Sub(m.now()); left <= renewBefore {
		return nil, fmt.Errorf("it expires at %s, within 30 days", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return nil, fmt.Errorf("it does not name the hostname %q", host)
	}
	return cert, nil
}

// generateSelfSigned makes an ECDSA P-256 certificate for host, localhost,
// 127.0.0.1 and ::1, valid for a year from an hour ago (clock skew).
func generateSelfSigned(host string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host, Organization: []string{"Postern self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else if host != "localhost" {
		tmpl.DNSNames = append([]string{host}, tmpl.DNSNames...)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: create self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// keepSelfSigned writes the key, then the certificate, each atomically. A
// crash between the two leaves a mismatched pair, which the next start
// notices and replaces.
func keepSelfSigned(dir string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tls: create self-signed directory %q: %w; make it writable by the gateway's user, or leave it empty to keep the certificate in memory", dir, err)
	}
	if err := writeAtomic(dir, selfSignedKeyName, keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(dir, selfSignedCertName, certPEM, 0o644)
}

// writeAtomic writes data to dir/name atomically and durably (package
// atomicfile), so readers see the old file or the new one, whole.
func writeAtomic(dir, name string, data []byte, perm fs.FileMode) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, name), bytes.NewReader(data), perm); err != nil {
		return fmt.Errorf("tls: %w", err) // the error names the file
	}
	return nil
}

// normalizeHost lower-cases the name and drops a trailing dot; an empty name
// means "localhost".
func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	if h == "" {
		return "localhost"
	}
	return h
}
