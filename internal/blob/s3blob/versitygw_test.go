package s3blob

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestVersitygw runs everything against versitygw, a real S3 server that
// verifies SigV4 signatures, started once for all its subtests with a posix
// backend in a temp dir. Over plain HTTP the SDK signs each body's SHA-256.
func TestVersitygw(t *testing.T) {
	t.Parallel()
	runStandin(t, startVersitygw(t, false), true)
}

// TestVersitygwTLS does the same over HTTPS, where the SDK sends bodies as
// it does to AWS: unsigned, aws-chunked, with a trailing CRC32 checksum.
func TestVersitygwTLS(t *testing.T) {
	t.Parallel()
	runStandin(t, startVersitygw(t, true), true)
}

// findVersitygw returns the versitygw binary: $POSTERN_VERSITYGW, the
// install script's .ci/cache/bin, or PATH. Missing, it skips the test, or
// fails it when POSTERN_REQUIRE_STANDINS=1 (as CI sets).
func findVersitygw(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("POSTERN_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("POSTERN_VERSITYGW: %v", err)
		}
		return p
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, ".ci", "cache", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	const msg = "versitygw not found: run scripts/ci/install-s3-standin.sh or set POSTERN_VERSITYGW"
	if os.Getenv("POSTERN_REQUIRE_STANDINS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// moduleRoot is the nearest directory above the working directory (the
// package's, under go test) that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// startVersitygw starts versitygw on a free 127.0.0.1 port, with a
// throwaway certificate when withTLS, and stops it when t's subtests are
// done. A port taken between choosing and binding it makes versitygw exit,
// and then another port is tried.
func startVersitygw(t *testing.T, withTLS bool) *server {
	t.Helper()
	bin := findVersitygw(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	srv := &server{verifiesSignatures: true}
	var tlsArgs []string
	if withTLS {
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		srv.rootCAs = writeSelfSigned(t, certFile, keyFile)
		tlsArgs = []string{"--cert", certFile, "--key", keyFile}
	}
	var lastErr error
	for range 3 {
		err := runVersitygw(t, srv, bin, root, tlsArgs)
		if err == nil {
			return srv
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return nil
}

// runVersitygw starts one versitygw process and sets srv.endpoint once it
// is healthy.
func runVersitygw(t *testing.T, srv *server, bin, root string, tlsArgs []string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"--access", testAccessKey, "--secret", testSecretKey, "--region", testRegion,
		"--port", addr, "--health", "/healthz", "--quiet"}
	args = append(args, tlsArgs...)
	cmd := exec.Command(bin, append(args, "posix", root)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	srv.endpoint = "http://" + addr
	if tlsArgs != nil {
		srv.endpoint = "https://" + addr
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited (%v): %s", err, out.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("versitygw not healthy at %s after 20s: %s", srv.endpoint, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if healthy(srv, srv.endpoint+"/healthz") {
			break
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	return nil
}

func healthy(srv *server, url string) bool {
	c := http.Client{Timeout: time.Second, Transport: srv.transport()}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// syncBuffer collects a child's output written from two pipes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key as PEM,
// and returns a pool that trusts it.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "postern-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
