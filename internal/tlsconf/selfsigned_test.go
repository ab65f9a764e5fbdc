package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedKeptAndReused(t *testing.T) {
	t.Parallel()
	log, _ := newLog(t)
	dir := filepath.Join(t.TempDir(), "tls")
	opts := Options{Hostname: "Mail.Example.Test.", SelfSignedDir: dir, Log: log}

	m1, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	leaf := m1.Leaf()
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, name := range []string{"mail.example.test", "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not cover %s: %v", name, err)
		}
	}
	if left := time.Until(leaf.NotAfter); left < 364*24*time.Hour || left > 366*24*time.Hour {
		t.Errorf("valid for %s more, want about a year", left)
	}

	fi, err := os.Stat(filepath.Join(dir, selfSignedKeyName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, selfSignedCertName)); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	m2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Leaf().SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("restart made a new certificate (serial %x, was %x); want the kept one", m2.Leaf().SerialNumber, leaf.SerialNumber)
	}
}

func TestSelfSignedMemoryOnly(t *testing.T) {
	t.Parallel()
	m1, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m1.Leaf().SerialNumber.Cmp(m2.Leaf().SerialNumber) == 0 {
		t.Error("two memory-only managers share a serial")
	}
	if err := m1.Leaf().VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
}

func TestSelfSignedReplacedWhenUnsuitable(t *testing.T) {
	t.Parallel()
	nearExpiry := func(t *testing.T, dir string) {
		certPEM, keyPEM := makeCert(t, certSpec{serial: 7, notAfter: time.Now().Add(10 * 24 * time.Hour), dnsNames: []string{"gw.example.test", "localhost"}})
		replaceFile(t, filepath.Join(dir, selfSignedCertName), certPEM)
		replaceFile(t, filepath.Join(dir, selfSignedKeyName), keyPEM)
	}
	otherHost := func(t *testing.T, dir string) {
		certPEM, keyPEM := makeCert(t, certSpec{serial: 7, dnsNames: []string{"old.example.test", "localhost"}})
		replaceFile(t, filepath.Join(dir, selfSignedCertName), certPEM)
		replaceFile(t, filepath.Join(dir, selfSignedKeyName), keyPEM)
	}
	mismatched := func(t *testing.T, dir string) {
		certPEM, _ := makeCert(t, certSpec{serial: 7, dnsNames: []string{"gw.example.test"}})
		_, keyPEM := makeCert(t, certSpec{serial: 8, dnsNames: []string{"gw.example.test"}})
		replaceFile(t, filepath.Join(dir, selfSignedCertName), certPEM)
		replaceFile(t, filepath.Join(dir, selfSignedKeyName), keyPEM)
	}
	for name, prepare := range map[string]func(*testing.T, string){
		"near expiry": nearExpiry, "other hostname": otherHost, "mismatched pair": mismatched,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			log, lb := newLog(t)
			dir := t.TempDir()
			prepare(t, dir)
			m, err := New(Options{Hostname: "gw.example.test", SelfSignedDir: dir, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			if m.Leaf().SerialNumber.Int64() == 7 {
				t.Fatal("kept certificate reused; want a new one")
			}
			if lb.count("replacing the kept self-signed certificate") != 1 {
				t.Error("replacement not logged")
			}
			again, err := New(Options{Hostname: "gw.example.test", SelfSignedDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if again.Leaf().SerialNumber.Cmp(m.Leaf().SerialNumber) != 0 {
				t.Error("replacement was not kept on disk")
			}
		})
	}
}

func TestSelfSignedDirNotWritable(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory below a regular file cannot be created, even as root.
	if _, err := New(Options{SelfSignedDir: filepath.Join(file, "tls")}); err == nil {
		t.Fatal("New succeeded with an unusable self-signed directory")
	}
}

func TestHandshakeVerifiesSelfSigned(t *testing.T) {
	t.Parallel()
	m, err := New(Options{Hostname: "gw.example.test", SelfSignedDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := m.Config("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "gw.example.test", "127.0.0.1"} {
		st, err := handshake(t, srv, trusting(m.Leaf(), name))
		if err != nil {
			t.Fatalf("verify as %s: %v", name, err)
		}
		if got := st.PeerCertificates[0].SerialNumber; got.Cmp(m.Leaf().SerialNumber) != 0 {
			t.Errorf("served serial %x, want %x", got, m.Leaf().SerialNumber)
		}
		if st.Version != tls.VersionTLS13 {
			t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(st.Version))
		}
	}
	// The client really verifies: a name the certificate lacks fails.
	if _, err := handshake(t, srv, trusting(m.Leaf(), "other.example.test")); err == nil {
		t.Error("handshake verified a name the certificate does not carry")
	}
	// Whatever the SNI (or none, as with an IP), the same certificate is served.
	st, err := handshake(t, srv, &tls.Config{InsecureSkipVerify: true, ServerName: "unrelated.example"})
	if err != nil {
		t.Fatal(err)
	}
	if st.PeerCertificates[0].SerialNumber.Cmp(m.Leaf().SerialNumber) != 0 {
		t.Error("SNI changed the served certificate")
	}
}
