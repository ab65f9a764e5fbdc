package tlsconf

import (
	"crypto/tls"
	"strings"
	"testing"
)

func TestTLSVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]uint16{
		"": tls.VersionTLS12, "1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11,
		"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13,
	} {
		got, err := TLSVersion(in)
		if err != nil || got != want {
			t.Errorf("TLSVersion(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
	for _, in := range []string{"1.4", "TLS1.2", "1", "ssl3"} {
		_, err := TLSVersion(in)
		if err == nil {
			t.Errorf("TLSVersion(%q) accepted", in)
			continue
		}
		for _, v := range []string{`"1.0"`, `"1.1"`, `"1.2"`, `"1.3"`} {
			if !strings.Contains(err.Error(), v) {
				t.Errorf("error %q does not list %s", err, v)
			}
		}
	}
}

// TestMinVersion shows what each setting lets in. Go clients since 1.18 and
// servers since 1.22 refuse TLS 1.0/1.1 only when MinVersion is left zero;
// an explicit MinVersion on each side is enough, no GODEBUG is needed.
func TestMinVersion(t *testing.T) {
	t.Parallel()
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	client := func(v uint16) *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}
	}
	for _, tc := range []struct {
		server string
		client uint16
		ok     bool
	}{
		{"", tls.VersionTLS11, false},
		{"1.2", tls.VersionTLS11, false},
		{"1.2", tls.VersionTLS12, true},
		{"1.2", tls.VersionTLS13, true},
		{"1.3", tls.VersionTLS12, false},
		{"1.3", tls.VersionTLS13, true},
		{"1.1", tls.VersionTLS10, false},
		{"1.1", tls.VersionTLS11, true},
		{"1.0", tls.VersionTLS10, true},
		{"1.0", tls.VersionTLS13, true},
	} {
		t.Run(tc.server+"/"+tls.VersionName(tc.client), func(t *testing.T) {
			t.Parallel()
			srv, err := m.Config(tc.server)
			if err != nil {
				t.Fatal(err)
			}
			st, err := handshake(t, srv, client(tc.client))
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && err == nil:
				t.Fatalf("accepted %s", tls.VersionName(st.Version))
			case tc.ok && st.Version != tc.client:
				t.Errorf("negotiated %s", tls.VersionName(st.Version))
			}
		})
	}
}

func TestMinVersionDefaultFromOptions(t *testing.T) {
	t.Parallel()
	m, err := New(Options{MinVersion: "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := m.Config("")
	if err != nil {
		t.Fatal(err)
	}
	if srv.MinVersion != tls.VersionTLS10 || srv.MaxVersion != 0 {
		t.Errorf("MinVersion %x MaxVersion %x, want TLS 1.0 and unset", srv.MinVersion, srv.MaxVersion)
	}
	if srv, _ = m.Config("1.2"); srv.MinVersion != tls.VersionTLS12 || srv.CipherSuites != nil {
		t.Error("an explicit 1.2 should override the default and keep Go's cipher suites")
	}
	if _, err := m.Config("2.0"); err == nil {
		t.Error("Config accepted 2.0")
	}
}

// TestLegacyRSAKeyExchange: old stacks that only speak RSA key exchange get
// in once 1.0 is enabled (with an RSA certificate), and not otherwise.
func TestLegacyRSAKeyExchange(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM := makeCert(t, certSpec{serial: 3, rsa: true})
	certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
	m, err := New(Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	oldDevice := func() *tls.Config {
		return &tls.Config{
			InsecureSkipVerify: true,
			MinVersion:         tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		}
	}

	legacy, err := m.Config("1.0")
	if err != nil {
		t.Fatal(err)
	}
	st, err := handshake(t, legacy, oldDevice())
	if err != nil {
		t.Fatalf("legacy config refused an RSA-only TLS 1.0 client: %v", err)
	}
	if st.CipherSuite != tls.TLS_RSA_WITH_AES_128_CBC_SHA {
		t.Errorf("negotiated %s", tls.CipherSuiteName(st.CipherSuite))
	}

	// The same suite under TLS 1.2 without the opt-in stays refused.
	modern, err := m.Config("1.2")
	if err != nil {
		t.Fatal(err)
	}
	c := oldDevice()
	c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, err := handshake(t, modern, c); err == nil {
		t.Error("default config accepted RSA key exchange")
	}

	// A modern client on the legacy config still gets TLS 1.3.
	st, err = handshake(t, legacy, &tls.Config{InsecureSkipVerify: true})
	if err != nil || st.Version != tls.VersionTLS13 {
		t.Errorf("modern client on legacy config: %s, %v", tls.VersionName(st.Version), err)
	}
}

func TestLegacyWarnsOncePerVersion(t *testing.T) {
	t.Parallel()
	log, lb := newLog(t)
	m, err := New(Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.2", "1.3", "1.0", "1.0", "1.1", "1.1", "1.0"} {
		if _, err := m.Config(v); err != nil {
			t.Fatal(err)
		}
	}
	if n := lb.count("legacy versions enabled"); n != 2 {
		t.Errorf("legacy warning logged %d times, want 2 (once for 1.0, once for 1.1)", n)
	}
}
