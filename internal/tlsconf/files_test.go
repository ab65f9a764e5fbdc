package tlsconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFromFiles(t *testing.T) {
	t.Parallel()
	log, lb := newLog(t)
	certPEM, keyPEM := makeCert(t, certSpec{serial: 41})
	certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
	m, err := New(Options{CertFile: certFile, KeyFile: keyFile, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, m); got != 41 {
		t.Errorf("served serial %d, want 41", got)
	}
	srv, err := m.Config("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, srv, trusting(m.Leaf(), "localhost")); err != nil {
		t.Errorf("verified handshake: %v", err)
	}
	if lb.count("tls certificate loaded") != 1 || lb.count("level=WARN") != 0 {
		t.Error("want one load line and no warning for a valid certificate")
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPEM, keyPEM := makeCert(t, certSpec{serial: 1})
	_, otherKey := makeCert(t, certSpec{serial: 2})
	certFile, keyFile := writePair(t, dir, certPEM, keyPEM)
	wrongKey := filepath.Join(dir, "other-key.pem")
	replaceFile(t, wrongKey, otherKey)
	notPEM := filepath.Join(dir, "not.pem")
	replaceFile(t, notPEM, []byte("hello\n"))
	missing := filepath.Join(dir, "missing.pem")

	for _, tc := range []struct {
		name string
		opts Options
		want []string // all must appear in the error
	}{
		{"cert only", Options{CertFile: certFile}, []string{"cert_file", "key_file", "together"}},
		{"key only", Options{KeyFile: keyFile}, []string{"cert_file", "key_file", "together"}},
		{"missing cert", Options{CertFile: missing, KeyFile: keyFile}, []string{"cert_file", missing, "does not exist"}},
		{"missing key", Options{CertFile: certFile, KeyFile: missing}, []string{"key_file", missing, "does not exist"}},
		{"key mismatch", Options{CertFile: certFile, KeyFile: wrongKey}, []string{certFile, wrongKey, "does not match"}},
		{"not PEM", Options{CertFile: notPEM, KeyFile: keyFile}, []string{notPEM, "PEM"}},
		{"bad min version", Options{MinVersion: "1.4"}, []string{`"1.4"`, `"1.0"`, `"1.3"`}},
		{"negative interval", Options{CheckInterval: -time.Second}, []string{"negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.opts)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestExpiredCertificateLoadsWithWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		spec certSpec
		want string
	}{
		{"expired", certSpec{serial: 5, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)}, "has expired"},
		{"expiring", certSpec{serial: 5, notAfter: time.Now().Add(5 * 24 * time.Hour)}, "expires within 30 days"},
		{"not yet valid", certSpec{serial: 5, notBefore: time.Now().Add(time.Hour)}, "not valid yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log, lb := newLog(t)
			certPEM, keyPEM := makeCert(t, tc.spec)
			certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
			m, err := New(Options{CertFile: certFile, KeyFile: keyFile, Log: log})
			if err != nil {
				t.Fatalf("New refused the certificate: %v", err)
			}
			if got := servedSerial(t, m); got != 5 {
				t.Errorf("served serial %d, want 5", got)
			}
			if lb.count(tc.want) != 1 {
				t.Errorf("no warning containing %q", tc.want)
			}
		})
	}
}

func TestUnreadableKeyFile(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	certPEM, keyPEM := makeCert(t, certSpec{serial: 1})
	certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
	if err := os.Chmod(keyFile, 0); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{CertFile: certFile, KeyFile: keyFile})
	if err == nil || !strings.Contains(err.Error(), "permissions") {
		t.Fatalf("got %v, want an error about permissions", err)
	}
}
