package s3blob

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/postern/postern/internal/blob"
)

// Defaults for the zero Options fields.
const (
	// MinPartSize is S3's smallest part of a multipart upload (but the last).
	MinPartSize = 5 << 20
	// DefaultPartSize keeps the read-ahead of a Put small: a Put holds at
	// most about (Concurrency+2) parts in memory, whatever the object size.
	DefaultPartSize = MinPartSize
	// DefaultConcurrency is the number of parts of one Put in flight.
	DefaultConcurrency = 2
	// DefaultPresignExpiry is how long URL's links work.
	DefaultPresignExpiry = time.Hour
	// MaxPresignExpiry is SigV4's limit. URLs signed with temporary
	// credentials (a Lambda or task role) stop working when the session
	// does, which is usually sooner.
	MaxPresignExpiry = 7 * 24 * time.Hour
	// DefaultAbortTimeout bounds the abort of a failed multipart upload.
	DefaultAbortTimeout = 30 * time.Second
)

// Options configure a Store. The zero value is usable: no prefix, the
// bucket's default encryption, and the defaults above.
type Options struct {
	// Prefix, when set, is a valid blob key under which every object lives
	// ("postern" stores key k as "postern/k"), so one bucket can hold
	// several deployments.
	Prefix string

	// ServerSideEncryption is sent on every Put (PutObject and
	// CreateMultipartUpload): "" (the bucket default), "AES256", "aws:kms"
	// or "aws:kms:dsse".
	ServerSideEncryption types.ServerSideEncryption
	// SSEKMSKeyID names the KMS key for "aws:kms"; empty means the
	// account's aws/s3 key.
	SSEKMSKeyID string

	// PresignExpiry is the lifetime of URL's links (default one hour, at
	// most seven days).
	PresignExpiry time.Duration
	// Presigner signs URL's links; nil means s3.NewPresignClient of the
	// client given to New when that is an *s3.Client.
	Presigner Presigner

	// PartSize is the multipart part size (default and minimum 5 MiB).
	PartSize int64
	// Concurrency is the number of parts of one Put uploaded at once
	// (default 2).
	Concurrency int
	// AbortTimeout bounds AbortMultipartUpload after a failed Put, which
	// runs on its own context so that a cancelled Put still cleans up
	// (default 30 s).
	AbortTimeout time.Duration
}

// Validate reports the first problem with o, naming the field.
func (o Options) Validate() error {
	if o.Prefix != "" && !blob.ValidKey(o.Prefix) {
		return fmt.Errorf("s3blob: Prefix %q is not a valid key (slash-separated [A-Za-z0-9._-] elements, no leading or trailing slash)", o.Prefix)
	}
	switch o.ServerSideEncryption {
	case "", types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms, types.ServerSideEncryptionAwsKmsDsse:
	default:
		return fmt.Errorf("s3blob: ServerSideEncryption %q: want \"\", %q, %q or %q", o.ServerSideEncryption,
			types.ServerSideEncryptionAes256, types.ServerSideEncryptionAwsKms, types.ServerSideEncryptionAwsKmsDsse)
	}
	if o.SSEKMSKeyID != "" && o.ServerSideEncryption != types.ServerSideEncryptionAwsKms && o.ServerSideEncryption != types.ServerSideEncryptionAwsKmsDsse {
		return fmt.Errorf("s3blob: SSEKMSKeyID needs ServerSideEncryption %q", types.ServerSideEncryptionAwsKms)
	}
	if o.PresignExpiry < 0 || o.PresignExpiry > MaxPresignExpiry {
		return fmt.Errorf("s3blob: PresignExpiry %v: want at most %v (0 means %v)", o.PresignExpiry, MaxPresignExpiry, DefaultPresignExpiry)
	}
	if o.PartSize != 0 && o.PartSize < MinPartSize {
		return fmt.Errorf("s3blob: PartSize %d: want at least %d (5 MiB)", o.PartSize, MinPartSize)
	}
	if o.Concurrency < 0 || o.AbortTimeout < 0 {
		return fmt.Errorf("s3blob: Concurrency and AbortTimeout must not be negative")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.PresignExpiry == 0 {
		o.PresignExpiry = DefaultPresignExpiry
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.AbortTimeout == 0 {
		o.AbortTimeout = DefaultAbortTimeout
	}
	return o
}
