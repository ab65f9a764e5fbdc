package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuf collects log lines for assertions and echoes them to t.Log.
type logBuf struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Helper()
	l.t.Log(strings.TrimSpace(string(p)))
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func newLog(t *testing.T) (*slog.Logger, *logBuf) {
	lb := &logBuf{t: t}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// certSpec describes a test certificate.
type certSpec struct {
	serial    int64
	notBefore time.Time
	notAfter  time.Time
	rsa       bool
	dnsNames  []string
}

// makeCert returns a self-signed PEM certificate and key for spec.
func makeCert(t *testing.T, spec certSpec) (certPEM, keyPEM []byte) {
	t.Helper()
	var key crypto.Signer
	var err error
	if spec.rsa {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = time.Now().Add(-time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	if spec.dnsNames == nil {
		spec.dnsNames = []string{"localhost"}
	}
	usage := x509.KeyUsageDigitalSignature
	if spec.rsa {
		usage |= x509.KeyUsageKeyEncipherment // RSA key exchange encrypts to the key
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(spec.serial),
		Subject:               pkix.Name{CommonName: spec.dnsNames[0]},
		NotBefore:             spec.notBefore,
		NotAfter:              spec.notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              spec.dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// replaceFile puts data at path by rename, as certificate tooling does.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// writePair writes a certificate and key into dir and returns their paths.
func writePair(t *testing.T, dir string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	replaceFile(t, certFile, certPEM)
	replaceFile(t, keyFile, keyPEM)
	return certFile, keyFile
}

// handshake runs one TLS handshake against server over loopback, with the
// server side behind tls.NewListener as the implicit-TLS listener is wired.
// It returns the client's view, or the first error of either side.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, server)
	defer tl.Close()

	srvErr := make(chan error, 1)
	go func() {
		c, err := tl.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		srvErr <- c.(*tls.Conn).Handshake()
	}()

	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), client)
	var st tls.ConnectionState
	if err == nil {
		st = conn.ConnectionState()
		conn.Close()
	}
	if serr := <-srvErr; err == nil && serr != nil {
		err = serr
	}
	return st, err
}

// trusting returns a client config that trusts exactly cert and expects name.
func trusting(cert *x509.Certificate, name string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{RootCAs: pool, ServerName: name}
}

// servedSerial handshakes without verification and returns the serial the
// server presented.
func servedSerial(t *testing.T, m *Manager) int64 {
	t.Helper()
	cfg, err := m.Config("")
	if err != nil {
		t.Fatal(err)
	}
	st, err := handshake(t, cfg, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return st.PeerCertificates[0].SerialNumber.Int64()
}
