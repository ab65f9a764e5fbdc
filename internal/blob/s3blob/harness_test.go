package s3blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/postern/postern/internal/awsclient"
	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/standin"
)

// Static credentials every stand-in is started with.
const (
	testAccessKey = standin.S3AccessKey
	testSecretKey = standin.S3SecretKey
	testRegion    = standin.Region
)

// server is an S3-compatible endpoint a test talks to.
type server struct {
	endpoint string
	// rootCAs, when set, is the pool that trusts the server's TLS
	// certificate.
	rootCAs *x509.CertPool
	// verifiesSignatures is true when the server rejects bad signatures,
	// so presigned URLs can be tested for tampering.
	verifiesSignatures bool
	// echoesSSE is true when HeadObject reports the SSE headers an object
	// was written with (gofakes3 keeps them as metadata; versitygw ignores
	// them), so the server side of SSE can be checked too.
	echoesSSE bool
	buckets   atomic.Int64
}

// transport returns a fresh HTTP transport that trusts srv.
func (srv *server) transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if srv.rootCAs != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: srv.rootCAs, MinVersion: tls.VersionTLS12}
	}
	return tr
}

// newClient returns a path-style client for srv with static credentials;
// hc is its HTTP client (nil for one that trusts srv).
func (srv *server) newClient(hc s3.HTTPClient) *s3.Client {
	if hc == nil {
		hc = &http.Client{Transport: srv.transport()}
	}
	return s3.New(s3.Options{
		Region:       testRegion,
		BaseEndpoint: aws.String(srv.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
		HTTPClient:   awsclient.HTTPClient(hc),
	})
}

// newBucket creates a fresh bucket and returns its name.
func (srv *server) newBucket(t *testing.T, c *s3.Client) string {
	t.Helper()
	// Random too: servers are shared by every test of the binary, and
	// -count runs the same tests again.
	name := fmt.Sprintf("postern-test-%d-%08x", srv.buckets.Add(1), rand.Uint32())
	if _, err := c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("CreateBucket(%s): %v", name, err)
	}
	return name
}

// recorder is an HTTP transport that notes what each request carried, so
// tests can see which S3 operations a Put made and with which headers.
type recorder struct {
	base http.RoundTripper // the server's transport
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	op     string // "PutObject", "CreateMultipartUpload", ...
	part   string // UploadPart's partNumber
	sse    string // x-amz-server-side-encryption
	kmsKey string // x-amz-server-side-encryption-aws-kms-key-id
	// payload is x-amz-content-sha256: the body's hash when signed, or
	// how it is sent ("STREAMING-UNSIGNED-PAYLOAD-TRAILER" is aws-chunked
	// with a trailing checksum).
	payload string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorded{
		op:      operation(req.Method, req.URL.Query()),
		part:    req.URL.Query().Get("partNumber"),
		sse:     req.Header.Get("X-Amz-Server-Side-Encryption"),
		kmsKey:  req.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"),
		payload: req.Header.Get("X-Amz-Content-Sha256"),
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

// operation names the S3 object operation of a path-style request.
func operation(method string, q url.Values) string {
	switch {
	case method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case method == http.MethodPut && q.Has("partNumber"):
		return "UploadPart"
	case method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case method == http.MethodPut:
		return "PutObject"
	}
	return method
}

func (r *recorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// count returns how many distinct op requests were made (parts by number),
// so that the SDK retrying a request under load does not count twice.
func count(reqs []recorded, op string) int {
	seen := map[string]bool{}
	for _, r := range reqs {
		if r.op == op {
			seen[r.part] = true
		}
	}
	return len(seen)
}

// onlyReader hides Seek and friends, as an SMTP DATA stream would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed byte) []byte {
	var s [32]byte
	s[0] = seed
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func mustPut(t *testing.T, s *Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, onlyReader{bytes.NewReader(data)}, nil); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

// wantObject fails unless key holds exactly want.
func wantObject(t *testing.T, s *Store, key string, want []byte) {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer func() { _ = rc.Close() }()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes (sha256 %x), want %d bytes (sha256 %x)",
			key, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func wantMissing(t *testing.T, s *Store, key string) {
	t.Helper()
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(%q) error = %v, want blob.ErrNotFound", key, err)
	}
}

// wantNoUploads fails if bucket has multipart uploads left (not aborted).
func wantNoUploads(t *testing.T, c *s3.Client, bucket string) {
	t.Helper()
	out, err := c.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	if len(out.Uploads) > 0 {
		t.Fatalf("%d multipart uploads left in %s, want all aborted", len(out.Uploads), bucket)
	}
}

// testPresignedURL checks that URL's link, fetched with plain net/http and no
// credentials, returns the object; and, where the server verifies
// signatures, that a tampered link is refused.
func testPresignedURL(t *testing.T, srv *server, s *Store) {
	ctx := t.Context()
	const key = "m/9f/01JPRESIGN/att/1"
	data := randomBytes(300<<10, 3)
	mustPut(t, s, key, data)

	link, err := s.URL(ctx, key)
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("URL returned %q: %v", link, err)
	}
	if got := u.Query().Get("X-Amz-Expires"); got != "3600" {
		t.Errorf("X-Amz-Expires = %q, want 3600 (the default hour)", got)
	}
	if !strings.HasPrefix(link, srv.endpoint+"/") {
		t.Errorf("URL %q is not on the endpoint %s", link, srv.endpoint)
	}
	status, body := fetch(t, ctx, srv, link)
	if status != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET presigned URL = %d with %d bytes, want 200 with the %d-byte object", status, len(body), len(data))
	}

	if !srv.verifiesSignatures {
		t.Log("this server does not verify signatures; tampering not tested")
		return
	}
	// Pointing the signed URL at another key must not work.
	mustPut(t, s, key+"-other", []byte("other"))
	other := strings.Replace(link, "/att/1?", "/att/1-other?", 1)
	if other == link {
		t.Fatalf("test bug: could not rewrite %q", u.Path)
	}
	if status, _ := fetch(t, ctx, srv, other); status != http.StatusForbidden {
		t.Fatalf("GET with the signature of another key = %d, want 403", status)
	}
}

// fetch GETs link with plain net/http: no SDK, no credentials.
func fetch(t *testing.T, ctx context.Context, srv *server, link string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: srv.transport()}).Do(req)
	if err != nil {
		t.Fatalf("GET presigned URL: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read presigned GET: %v", err)
	}
	return resp.StatusCode, body
}
