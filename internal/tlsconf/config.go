package tlsconf

import (
	"crypto/tls"
	"log/slog"
)

// legacyCipherSuites are the TLS 1.0-1.2 suites offered once an operator
// allows TLS 1.0 or 1.1. Go's default list already has the ECDHE AES-CBC-SHA
// suites that TLS 1.0 needs, so they are listed here only to make the set
// explicit. What the default list lacks are the RSA key exchange suites,
// removed in Go 1.22: many old embedded stacks offer nothing else. They have
// no forward secrecy and only work with an RSA certificate (cert_file), not
// the ECDSA self-signed one. 3DES, RC4 and CBC-SHA256 stay off: broken, or
// slow in Go and never the only choice of a real client.
var legacyCipherSuites = []uint16{
	// TLS 1.2 AEAD suites, as in Go's defaults.
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	// TLS 1.0+ with forward secrecy, as in Go's defaults.
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	// RSA key exchange, not in Go's defaults.
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// Config returns server settings for one listener: STARTTLS (go-smtp's
// Server.TLSConfig) or implicit TLS (tls.NewListener). minVersion "" means
// Options.MinVersion, and that "" means 1.2. TLS 1.3 is always allowed.
// From 1.2 up, Go's default cipher suites apply and follow Go's updates;
// 1.0 and 1.1 are the legacy-device opt-in: they add the suites in
// legacyCipherSuites and log a warning once per Manager and version.
//
// Each call returns a new tls.Config; callers may adjust it.
func (m *Manager) Config(minVersion string) (*tls.Config, error) {
	if minVersion == "" {
		minVersion = m.opts.MinVersion
	}
	v, err := TLSVersion(minVersion)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		GetCertificate: m.GetCertificate,
		MinVersion:     v,
	}
	if v < tls.VersionTLS12 {
		cfg.CipherSuites = append([]uint16(nil), legacyCipherSuites...)
		m.warnLegacy(v, minVersion)
	}
	return cfg, nil
}

func (m *Manager) warnLegacy(v uint16, name string) {
	m.warnMu.Lock()
	defer m.warnMu.Unlock()
	if m.warned[v] {
		return
	}
	m.warned[v] = true
	m.log.Warn("tls legacy versions enabled for old devices: TLS "+name+" and RSA key exchange are accepted; raise min_version to 1.2 once those devices are gone",
		slog.String("min_version", name))
}
