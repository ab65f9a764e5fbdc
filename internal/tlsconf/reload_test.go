package tlsconf

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"
)

func TestReloadWhenFilesChange(t *testing.T) {
	t.Parallel()
	log, lb := newLog(t)
	dir := t.TempDir()
	certPEM, keyPEM := makeCert(t, certSpec{serial: 1})
	certFile, keyFile := writePair(t, dir, certPEM, keyPEM)
	m, err := New(Options{CertFile: certFile, KeyFile: keyFile, CheckInterval: time.Nanosecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, m); got != 1 {
		t.Fatalf("served serial %d, want 1", got)
	}
	certPEM, keyPEM = makeCert(t, certSpec{serial: 2})
	writePair(t, dir, certPEM, keyPEM)
	if got := servedSerial(t, m); got != 2 {
		t.Errorf("after rewrite served serial %d, want 2", got)
	}
	if lb.count("tls certificate reloaded") != 1 {
		t.Error("reload not logged once")
	}
	// Unchanged files are not read again.
	servedSerial(t, m)
	if lb.count("tls certificate reloaded") != 1 {
		t.Error("unchanged files were reloaded")
	}
}

func TestBrokenRewriteKeepsServing(t *testing.T) {
	t.Parallel()
	log, lb := newLog(t)
	dir := t.TempDir()
	certPEM, keyPEM := makeCert(t, certSpec{serial: 1})
	certFile, keyFile := writePair(t, dir, certPEM, keyPEM)
	m, err := New(Options{CertFile: certFile, KeyFile: keyFile, CheckInterval: time.Nanosecond, Log: log})
	if err != nil {
		t.Fatal(err)
	}

	// Half a renewal: a new certificate beside the old key.
	newCert, newKey := makeCert(t, certSpec{serial: 2})
	replaceFile(t, certFile, newCert)
	for range 3 {
		if got := servedSerial(t, m); got != 1 {
			t.Fatalf("served serial %d during a broken rewrite, want the old 1", got)
		}
	}
	if n := lb.count("reload failed"); n != 1 {
		t.Errorf("reload failure logged %d times, want once until the files change again", n)
	}
	if err := m.Reload(); err == nil {
		t.Error("Reload of a mismatched pair returned nil")
	}
	if got := servedSerial(t, m); got != 1 {
		t.Errorf("served serial %d after a failed Reload, want 1", got)
	}

	// Garbage in the certificate file, then the renewal completes.
	replaceFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"))
	if got := servedSerial(t, m); got != 1 {
		t.Fatalf("served serial %d with a garbage certificate file, want 1", got)
	}
	replaceFile(t, certFile, newCert)
	replaceFile(t, keyFile, newKey)
	if got := servedSerial(t, m); got != 2 {
		t.Errorf("served serial %d once the renewal completed, want 2", got)
	}
}

func TestReloadRespectsIntervalAndForces(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPEM, keyPEM := makeCert(t, certSpec{serial: 1})
	certFile, keyFile := writePair(t, dir, certPEM, keyPEM)
	m, err := New(Options{CertFile: certFile, KeyFile: keyFile, CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM = makeCert(t, certSpec{serial: 2})
	writePair(t, dir, certPEM, keyPEM)
	if got := servedSerial(t, m); got != 1 {
		t.Errorf("served serial %d before the interval passed, want 1", got)
	}
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, m); got != 2 {
		t.Errorf("served serial %d after Reload, want 2", got)
	}
}

func TestSelfSignedRenewedNearExpiry(t *testing.T) {
	t.Parallel()
	m, err := New(Options{CheckInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	first := m.Leaf().SerialNumber
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if m.Leaf().SerialNumber.Cmp(first) != 0 {
		t.Fatal("a fresh self-signed certificate was renewed")
	}
	// Eleven months later.
	m.mu.Lock()
	m.now = func() time.Time { return time.Now().Add(340 * 24 * time.Hour) }
	m.mu.Unlock()
	m.GetCertificate(&tls.ClientHelloInfo{})
	if m.Leaf().SerialNumber.Cmp(first) == 0 {
		t.Fatal("a self-signed certificate 25 days from expiry was not renewed")
	}
}

func TestHandshakesDuringReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pairs := make([][2][]byte, 4)
	for i := range pairs {
		c, k := makeCert(t, certSpec{serial: int64(i + 1)})
		pairs[i] = [2][]byte{c, k}
	}
	certFile, keyFile := writePair(t, dir, pairs[0][0], pairs[0][1])
	m, err := New(Options{CertFile: certFile, KeyFile: keyFile, CheckInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := m.Config("")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if _, err := handshake(t, srv, &tls.Config{InsecureSkipVerify: true}); err != nil {
					t.Errorf("handshake during reload: %v", err)
				}
			}
		})
	}
	for i := range 20 {
		p := pairs[i%len(pairs)]
		writePair(t, dir, p[0], p[1]) // sometimes seen half-written: must not matter
		if i%5 == 0 {
			_ = m.Reload()
		}
	}
	wg.Wait()
}
