package tlsconf

import (
	"crypto/tls"
	"fmt"
)

// DefaultMinVersion is the lowest TLS version accepted unless configured
// otherwise. 1.0 and 1.1 are an explicit opt-in for devices that cannot do
// better.
const DefaultMinVersion = "1.2"

// TLSVersion maps a configured minimum version ("1.0", "1.1", "1.2", "1.3")
// to its crypto/tls constant. "" means DefaultMinVersion, so config
// validation can pass an unset key straight through.
func TLSVersion(s string) (uint16, error) {
	switch s {
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls min_version %q is not supported; use one of \"1.0\", \"1.1\", \"1.2\" (default), \"1.3\"", s)
}
