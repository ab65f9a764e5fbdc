package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/postern/postern/internal/blob"
	"github.com/postern/postern/internal/blob/blobtest"
)

// runStandin runs the conformance suite and the S3-specific scenarios
// against srv. With perStorePrefix each conformance store is a fresh prefix
// in one bucket (exercising Options.Prefix); otherwise a fresh bucket.
func runStandin(t *testing.T, srv *server, perStorePrefix bool) {
	t.Run("Conformance", func(t *testing.T) {
		t.Parallel()
		c := srv.newClient(nil)
		var shared string
		if perStorePrefix {
			shared = srv.newBucket(t, c)
		}
		var n atomic.Int64
		blobtest.Run(t, func(t *testing.T) blob.Store {
			if perStorePrefix {
				return New(c, shared, Options{Prefix: fmt.Sprintf("conf/%d", n.Add(1))})
			}
			return New(c, srv.newBucket(t, c), Options{})
		})
	})
	scenarios := []scenario{
		{"PresignedURL", func(t *testing.T, srv *server) {
			c := srv.newClient(nil)
			testPresignedURL(t, srv, New(c, srv.newBucket(t, c), Options{}))
		}},
		{"MultipartRoundTrip", testMultipartRoundTrip},
		{"MultipartReaderFailureAborts", testMultipartReaderFailure},
		{"MultipartCancelAborts", testMultipartCancel},
		{"PrefixMapsKeys", testPrefix},
	}
	if srv.echoesSSE {
		// The headers are checked as sent, so one server is enough; this
		// one also reports them back.
		scenarios = append(scenarios, scenario{"SSEHeadersOnEveryPut", testSSEHeaders})
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.fn(t, srv)
		})
	}
}

type scenario struct {
	name string
	fn   func(t *testing.T, srv *server)
}

// recordingStore returns a store on a fresh bucket whose requests rec sees,
// and the client under it.
func recordingStore(t *testing.T, srv *server, opts Options) (*Store, *recorder, *s3.Client, string) {
	t.Helper()
	rec := &recorder{base: srv.transport()}
	c := srv.newClient(&http.Client{Transport: rec})
	bucket := srv.newBucket(t, c)
	rec.take()
	return New(c, bucket, opts), rec, c, bucket
}

// A body over one part goes up as a multipart upload of 5 MiB parts.
func testMultipartRoundTrip(t *testing.T, srv *server) {
	s, rec, c, bucket := recordingStore(t, srv, Options{})
	const key = "m/01/01JMULTI/raw.eml"
	data := randomBytes(12<<20+77, 1)
	if err := s.Put(t.Context(), key, onlyReader{bytes.NewReader(data)}, &blob.PutOptions{ContentType: "message/rfc822"}); err != nil {
		t.Fatalf("Put 12 MiB: %v", err)
	}
	reqs := rec.take()
	// Over TLS the SDK streams parts as it does to AWS (aws-chunked with a
	// trailing checksum); over plain HTTP it signs each part's SHA-256.
	for _, r := range reqs {
		overTLS := srv.rootCAs != nil
		if r.op == "UploadPart" && (overTLS && r.payload != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" || !overTLS && len(r.payload) != 64) {
			t.Errorf("UploadPart x-amz-content-sha256 = %q over %s", r.payload, srv.endpoint)
		}
	}
	if got := [4]int{count(reqs, "CreateMultipartUpload"), count(reqs, "UploadPart"), count(reqs, "CompleteMultipartUpload"), count(reqs, "PutObject")}; got != [4]int{1, 3, 1, 0} {
		t.Errorf("requests (create, parts, complete, put) = %v, want [1 3 1 0]", got)
	}
	wantObject(t, s, key, data)
	if a, err := s.Stat(t.Context(), key); err != nil || a.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v; want size %d", a, err, len(data))
	}
	head, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: ptr(key)})
	if err != nil || deref(head.ContentType) != "message/rfc822" {
		t.Errorf("HeadObject content type = %q, %v; want message/rfc822", deref(head.ContentType), err)
	}

	// A body under one part goes up in one PutObject.
	small := randomBytes(DefaultPartSize-1, 2)
	mustPut(t, s, "small", small)
	if reqs := rec.take(); count(reqs, "PutObject") != 1 || count(reqs, "CreateMultipartUpload") != 0 {
		t.Errorf("a body under one part made requests %v, want one PutObject", reqs)
	}
	wantObject(t, s, "small", small)
}

// errReader fails every read, as a client dropping mid-DATA does.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A body that fails after the first part leaves no object, keeps an existing
// one, and aborts the multipart upload.
func testMultipartReaderFailure(t *testing.T, srv *server) {
	s, rec, c, bucket := recordingStore(t, srv, Options{})
	old := []byte("previous version")
	mustPut(t, s, "existing", old)
	rec.take()
	errDrop := errors.New("connection reset by device")
	for _, key := range []string{"fresh", "existing"} {
		// One part and a bit: the multipart upload has begun when it fails.
		body := io.MultiReader(bytes.NewReader(randomBytes(DefaultPartSize+512<<10, 4)), errReader{errDrop})
		err := s.Put(t.Context(), key, onlyReader{body}, nil)
		if !errors.Is(err, errDrop) {
			t.Fatalf("Put(%q) with a failing body = %v, want an error wrapping %v", key, err, errDrop)
		}
		reqs := rec.take()
		if count(reqs, "CreateMultipartUpload") != 1 || count(reqs, "AbortMultipartUpload") != 1 || count(reqs, "CompleteMultipartUpload") != 0 {
			t.Fatalf("Put(%q) requests = %v, want a multipart upload that is aborted", key, reqs)
		}
	}
	wantMissing(t, s, "fresh")
	wantObject(t, s, "existing", old)
	wantNoUploads(t, c, bucket)
}

// cancelAfter cancels its context once n bytes have been read and keeps
// supplying data, so only the store's own checks can stop the Put.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	} else if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

// Cancelling the context after the multipart upload began still aborts it:
// the abort runs on a fresh context.
func testMultipartCancel(t *testing.T, srv *server) {
	s, rec, c, bucket := recordingStore(t, srv, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	body := &cancelAfter{r: bytes.NewReader(randomBytes(12<<20, 5)), n: 6 << 20, cancel: cancel}
	err := s.Put(ctx, "cancelled", body, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with its context cancelled after 6 MiB = %v, want context.Canceled", err)
	}
	if reqs := rec.take(); count(reqs, "CreateMultipartUpload") != 1 || count(reqs, "AbortMultipartUpload") != 1 {
		t.Fatalf("requests = %v, want a multipart upload that is aborted", reqs)
	}
	wantMissing(t, s, "cancelled")
	wantNoUploads(t, c, bucket)
}

// The SSE options go on PutObject and CreateMultipartUpload, the requests
// that create objects; without them no SSE header is sent.
func testSSEHeaders(t *testing.T, srv *server) {
	cases := []struct {
		name   string
		opts   Options
		sse    string
		kmsKey string
	}{
		{"BucketDefault", Options{}, "", ""},
		{"AES256", Options{ServerSideEncryption: types.ServerSideEncryptionAes256}, "AES256", ""},
		{"KMS", Options{ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyID: "alias/postern-test"}, "aws:kms", "alias/postern-test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, rec, c, bucket := recordingStore(t, srv, tc.opts)
			small, large := []byte("small object"), randomBytes(DefaultPartSize+1, 6)
			mustPut(t, s, "small", small)
			mustPut(t, s, "large", large)
			reqs := rec.take()
			for _, r := range reqs {
				if r.op != "PutObject" && r.op != "CreateMultipartUpload" {
					continue
				}
				if r.sse != tc.sse || r.kmsKey != tc.kmsKey {
					t.Errorf("%s sent SSE %q, key %q; want %q, %q", r.op, r.sse, r.kmsKey, tc.sse, tc.kmsKey)
				}
			}
			if count(reqs, "PutObject") != 1 || count(reqs, "CreateMultipartUpload") != 1 {
				t.Fatalf("requests = %v, want one PutObject and one CreateMultipartUpload", reqs)
			}
			wantObject(t, s, "large", large)
			for _, key := range []string{"small", "large"} {
				out, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
				if err != nil {
					t.Fatalf("HeadObject(%q): %v", key, err)
				}
				if string(out.ServerSideEncryption) != tc.sse || deref(out.SSEKMSKeyId) != tc.kmsKey {
					t.Errorf("HeadObject(%q) reports SSE %q, key %q; want %q, %q", key, out.ServerSideEncryption, deref(out.SSEKMSKeyId), tc.sse, tc.kmsKey)
				}
			}
		})
	}
}

// Options.Prefix puts objects under "prefix/key", invisible to a store
// without the prefix.
func testPrefix(t *testing.T, srv *server) {
	c := srv.newClient(nil)
	bucket := srv.newBucket(t, c)
	s := New(c, bucket, Options{Prefix: "tenant-a/v1"})
	plain := New(c, bucket, Options{})
	data := []byte("prefixed")
	mustPut(t, s, "m/x/raw.eml", data)
	wantObject(t, plain, "tenant-a/v1/m/x/raw.eml", data)
	wantMissing(t, plain, "m/x/raw.eml")
	out, err := c.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: ptr("tenant-a/v1/m/x/raw.eml")})
	if err != nil || out.ContentLength == nil || *out.ContentLength != int64(len(data)) {
		t.Fatalf("HeadObject of the prefixed key = %+v, %v", out, err)
	}
	if err := s.Delete(t.Context(), "m/x/raw.eml"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantMissing(t, plain, "tenant-a/v1/m/x/raw.eml")
}

func ptr[T any](v T) *T { return &v }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
