package s3blob

import (
	"testing"

	"github.com/postern/postern/internal/standin"
)

// TestMain stops the versitygw the package's tests share (package standin).
func TestMain(m *testing.M) { standin.Main(m) }

// TestVersitygw runs everything against versitygw, a real S3 server that
// verifies SigV4 signatures, with a posix backend. Over plain HTTP the SDK
// signs each body's SHA-256.
func TestVersitygw(t *testing.T) {
	t.Parallel()
	endpoint, _, _ := standin.S3(t)
	runStandin(t, &server{endpoint: endpoint, verifiesSignatures: true}, true)
}

// TestVersitygwTLS does the same over HTTPS, where the SDK sends bodies as
// it does to AWS: unsigned, aws-chunked, with a trailing CRC32 checksum.
func TestVersitygwTLS(t *testing.T) {
	t.Parallel()
	srv := standin.StartS3(t, standin.S3Options{TLS: true})
	runStandin(t, &server{endpoint: srv.Endpoint, rootCAs: srv.RootCAs, verifiesSignatures: true}, true)
}
