package s3blob

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/postern/postern/internal/standin"
)

// isolateAWSEnv points the SDK's default chain at static test credentials
// and nothing else: no shared files, profile, region or endpoint override.
// (t.Setenv: these tests are not parallel.)
func isolateAWSEnv(t *testing.T) { standin.IsolateAWSEnv(t, "") }

// roundTrip writes and reads one object through a client from NewClient.
func roundTrip(t *testing.T, endpoint string, hc *http.Client) {
	t.Helper()
	c, err := NewClient(t.Context(), endpoint, "", true, hc)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	if got := c.Options().Region; got != fallbackRegion {
		t.Errorf("region = %q, want the fallback %q", got, fallbackRegion)
	}
	srv := &server{endpoint: endpoint}
	s := New(c, srv.newBucket(t, c), Options{})
	data := randomBytes(6<<20, 9) // multipart too
	mustPut(t, s, "m/aa/x/raw.eml", data)
	wantObject(t, s, "m/aa/x/raw.eml", data)
}

// A plain HTTP client passed to NewClient works although AWS_CA_BUNDLE is
// set: it goes on the S3 client, not through config.WithHTTPClient.
func TestNewClientPlainHTTPWithCABundleSet(t *testing.T) {
	isolateAWSEnv(t)
	ts := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(ts.Close)
	other := httptest.NewTLSServer(http.NotFoundHandler())
	other.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	writeCert(t, bundle, other)
	t.Setenv("AWS_CA_BUNDLE", bundle)
	roundTrip(t, ts.URL, &http.Client{})
}

// With no HTTP client, the SDK's own client trusts AWS_CA_BUNDLE: a TLS
// endpoint whose certificate is in the bundle works, one whose is not
// fails. (Only bodiless calls: gofakes3 stores the aws-chunked framing the
// SDK uses over TLS as object content; versitygw covers data over TLS.)
func TestNewClientDefaultHTTPTrustsCABundle(t *testing.T) {
	isolateAWSEnv(t)
	ts := httptest.NewTLSServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(ts.Close)
	trusted, untrusted := filepath.Join(t.TempDir(), "ca.pem"), filepath.Join(t.TempDir(), "other.pem")
	writeCert(t, trusted, ts)
	// Not another httptest server: they all share one certificate.
	if _, err := standin.WriteCert(untrusted, filepath.Join(t.TempDir(), "other-key.pem")); err != nil {
		t.Fatal(err)
	}

	t.Setenv("AWS_CA_BUNDLE", untrusted)
	c, err := NewClient(t.Context(), ts.URL, "", true, nil)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	var certErr *tls.CertificateVerificationError
	noRetry := func(o *s3.Options) { o.RetryMaxAttempts = 1 }
	if _, err := c.ListBuckets(t.Context(), &s3.ListBucketsInput{}, noRetry); !errors.As(err, &certErr) {
		t.Fatalf("ListBuckets with the wrong CA bundle = %v, want a certificate error", err)
	}

	t.Setenv("AWS_CA_BUNDLE", trusted)
	c, err = NewClient(t.Context(), ts.URL, "", true, nil)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	srv := &server{endpoint: ts.URL}
	s := New(c, srv.newBucket(t, c), Options{})
	wantMissing(t, s, "m/aa/x/raw.eml")
}

// writeCert writes the test server's certificate as a PEM CA bundle.
func writeCert(t *testing.T, path string, ts *httptest.Server) {
	t.Helper()
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(path, block, 0o600); err != nil {
		t.Fatal(err)
	}
}
