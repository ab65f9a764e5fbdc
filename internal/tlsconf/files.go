package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// stamps identify the certificate and key files as last read. A renewal
// that renames new files into place changes the file identity; one that
// rewrites in place changes size or modification time.
type stamps struct{ cert, key fs.FileInfo }

func statFiles(certFile, keyFile string) stamps {
	var st stamps
	st.cert, _ = os.Stat(certFile)
	st.key, _ = os.Stat(keyFile)
	return st
}

func (a stamps) same(b stamps) bool { return sameFile(a.cert, b.cert) && sameFile(a.key, b.key) }

// sameFile treats two missing files as the same, so a deleted file is
// reported once, not on every check.
func sameFile(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// loadFiles reads a PEM certificate chain and its key. The stamps are taken
// before reading, so a change racing the read is seen at the next check.
func loadFiles(certFile, keyFile string) (*tls.Certificate, stamps, error) {
	st := statFiles(certFile, keyFile)
	certPEM, err := readFile("cert_file", certFile)
	if err != nil {
		return nil, st, err
	}
	keyPEM, err := readFile("key_file", keyFile)
	if err != nil {
		return nil, st, err
	}
	cert, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, st, fmt.Errorf("tls: cert_file %q and key_file %q do not load as a pair: %w; the cert file must hold PEM certificates with the server's own certificate first, and the key file its PEM private key", certFile, keyFile, err)
	}
	return cert, st, nil
}

// parsePair is tls.X509KeyPair with Leaf always set, which the Manager
// relies on (X509KeyPair leaves it nil under GODEBUG x509keypairleaf=0).
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
	}
	return &cert, nil
}

func readFile(key, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("tls: %s %q does not exist; point %s at an existing PEM file, or leave cert_file and key_file empty for a self-signed certificate", key, path, key)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("tls: %s %q is not readable by the gateway's user; fix its permissions: %w", key, path, err)
	case err != nil:
		return nil, fmt.Errorf("tls: read %s %q: %w", key, path, err)
	}
	return b, nil
}
