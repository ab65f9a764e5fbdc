package s3blob

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"

	"github.com/postern/postern/internal/blob"
)

// Put streams r to key. A body of up to one part goes up as one PutObject;
// a longer one as a multipart upload of Options.PartSize parts, so memory
// per Put is a few parts whatever the object size, and r need not be
// seekable or sized.
//
// S3 makes an object visible only when PutObject or CompleteMultipartUpload
// succeeds, so when reading r fails or ctx ends nothing new is visible and
// an existing object is unchanged; a started multipart upload is aborted
// (on a fresh context bounded by Options.AbortTimeout). If that abort fails
// too, the invisible parts stay until the bucket's
// AbortIncompleteMultipartUpload lifecycle rule removes them.
//
// As with any remote store, a failure while the final request is in flight
// can leave the outcome unknown: the object may exist although Put returned
// an error. Callers retry, and retries write the same bytes to the same key.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts *blob.PutOptions) error {
	k, err := s.objectKey("put", key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3blob put %s: %w", s.where(k), err)
	}
	in := &transfermanager.UploadObjectInput{
		Bucket: &s.bucket,
		Key:    &k,
		// The uploader notices a cancelled context only between parts;
		// blob.ContextReader stops it within one Read. (It hides Seek too, which
		// the uploader would use only to size parts of objects over
		// 10,000 parts.)
		Body:                 blob.ContextReader(ctx, r),
		ServerSideEncryption: tmtypes.ServerSideEncryption(s.opts.ServerSideEncryption),
	}
	if s.opts.SSEKMSKeyID != "" {
		in.SSEKMSKeyID = &s.opts.SSEKMSKeyID
	}
	if opts != nil && opts.ContentType != "" {
		in.ContentType = &opts.ContentType
	}
	if _, err := s.upload.UploadObject(ctx, in); err != nil {
		return fmt.Errorf("s3blob put %s: %w", s.where(k), err)
	}
	return nil
}
