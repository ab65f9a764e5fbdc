package s3blob

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		opts Options
		want string // substring of the error; "" for valid
	}{
		{Options{}, ""},
		{Options{Prefix: "postern/prod", ServerSideEncryption: types.ServerSideEncryptionAwsKms, SSEKMSKeyID: "alias/x",
			PresignExpiry: MaxPresignExpiry, PartSize: 8 << 20, Concurrency: 1, AbortTimeout: time.Second}, ""},
		{Options{ServerSideEncryption: types.ServerSideEncryptionAes256}, ""},
		{Options{Prefix: "/abs"}, "Prefix"},
		{Options{Prefix: "trail/"}, "Prefix"},
		{Options{Prefix: "a/../b"}, "Prefix"},
		{Options{ServerSideEncryption: "aes256"}, "ServerSideEncryption"},
		{Options{SSEKMSKeyID: "alias/x"}, "SSEKMSKeyID"},
		{Options{ServerSideEncryption: types.ServerSideEncryptionAes256, SSEKMSKeyID: "alias/x"}, "SSEKMSKeyID"},
		{Options{PresignExpiry: MaxPresignExpiry + time.Second}, "PresignExpiry"},
		{Options{PresignExpiry: -time.Second}, "PresignExpiry"},
		{Options{PartSize: MinPartSize - 1}, "PartSize"},
		{Options{Concurrency: -1}, "Concurrency"},
	}
	for _, tc := range cases {
		err := tc.opts.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tc.opts, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.opts, err, tc.want)
		}
	}
}

// A store with invalid options refuses every call before any request: the
// nil client would panic otherwise.
func TestInvalidOptionsFailEveryCall(t *testing.T) {
	t.Parallel()
	for _, s := range []*Store{
		New(nil, "bucket", Options{SSEKMSKeyID: "alias/x"}),
		New(nil, "", Options{}),
	} {
		ctx := t.Context()
		if err := s.Put(ctx, "k", bytes.NewReader(nil), nil); err == nil {
			t.Error("Put succeeded")
		}
		if _, err := s.Get(ctx, "k"); err == nil {
			t.Error("Get succeeded")
		}
		if _, err := s.Stat(ctx, "k"); err == nil {
			t.Error("Stat succeeded")
		}
		if err := s.Delete(ctx, "k"); err == nil {
			t.Error("Delete succeeded")
		}
		if _, err := s.URL(ctx, "k"); err == nil {
			t.Error("URL succeeded")
		}
	}
}

func TestURLNeedsPresigner(t *testing.T) {
	t.Parallel()
	s := New(&fakeAPI{}, "bucket", Options{})
	if _, err := s.URL(t.Context(), "k"); err == nil || !strings.Contains(err.Error(), "presigner") {
		t.Fatalf("URL without a presigner = %v, want an error saying so", err)
	}
	if _, err := s.URL(t.Context(), "../k"); err == nil {
		t.Fatal("URL of an invalid key succeeded")
	}
	// An *s3.Client gets its presigner from New.
	c := s3.New(s3.Options{Region: testRegion})
	if New(c, "bucket", Options{}).presign == nil {
		t.Fatal("New(*s3.Client) did not set up a presigner")
	}
}
