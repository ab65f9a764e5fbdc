// Package s3blob is the Amazon S3 driver of blob.Store: objects in one bucket,
// optionally under a key prefix, streamed up with multipart uploads.
package s3blob

import (
	"context"
	"errors"
	"fmt"
	"io"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/postern/postern/internal/blob"
)

// API is the part of *s3.Client the store uses: what the transfer manager
// needs for multipart uploads (it also declares the read calls Get and Stat
// make), plus DeleteObject.
type API interface {
	transfermanager.S3APIClient
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// Presigner signs GET requests that anyone holding the URL may send until it
// expires. *s3.PresignClient implements it.
type Presigner interface {
	PresignGetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

// Store keeps objects in one S3 bucket. It is safe for concurrent use.
type Store struct {
	client  API
	bucket  string
	opts    Options
	presign Presigner
	upload  *transfermanager.Client
	// optsErr is Options.Validate's verdict, returned by every call, so a
	// misconfigured store fails loudly on first use rather than writing
	// objects unencrypted or under the wrong keys.
	optsErr error
}

var _ blob.Store = (*Store)(nil)

// New returns a store for bucket through client. When opts.Presigner is nil
// and client is an *s3.Client, URL presigns with s3.NewPresignClient(client).
// Invalid options are reported by every call (see Options.Validate).
func New(client API, bucket string, opts Options) *Store {
	s := &Store{client: client, bucket: bucket, presign: opts.Presigner, optsErr: opts.Validate()}
	if bucket == "" && s.optsErr == nil {
		s.optsErr = errors.New("s3blob: empty bucket name")
	}
	s.opts = opts.withDefaults()
	if s.presign == nil {
		if c, ok := client.(*s3.Client); ok {
			s.presign = s3.NewPresignClient(c)
		}
	}
	s.upload = transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = s.opts.PartSize
		// Bodies shorter than one part go up in a single PutObject, longer
		// ones as a multipart upload. Either way at most one part is read
		// ahead before the first request.
		o.MultipartUploadThreshold = s.opts.PartSize
		o.Concurrency = s.opts.Concurrency
		// The abort after a failed or cancelled upload runs on a fresh
		// context: the caller's may be the one that was cancelled.
		o.FailTimeout = s.opts.AbortTimeout
	})
	return s
}

// objectKey maps a blob key to the S3 key, refusing keys outside the blob
// key grammar before any request is made.
func (s *Store) objectKey(op, key string) (string, error) {
	if s.optsErr != nil {
		return "", fmt.Errorf("s3blob %s %q: %w", op, key, s.optsErr)
	}
	if !blob.ValidKey(key) {
		return "", fmt.Errorf("s3blob %s: invalid key %q", op, key)
	}
	if s.opts.Prefix == "" {
		return key, nil
	}
	return s.opts.Prefix + "/" + key, nil
}

// Get streams the object at key. A missing object is an error wrapping
// blob.ErrNotFound. The caller must close the reader.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.objectKey("get", key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return nil, s.wrap("get", k, err)
	}
	return out.Body, nil
}

// Stat reports the object's size and last-modified time with HeadObject.
func (s *Store) Stat(ctx context.Context, key string) (blob.Attrs, error) {
	k, err := s.objectKey("stat", key)
	if err != nil {
		return blob.Attrs{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return blob.Attrs{}, s.wrap("stat", k, err)
	}
	var a blob.Attrs
	if out.ContentLength != nil {
		a.Size = *out.ContentLength
	}
	if out.LastModified != nil {
		a.ModTime = *out.LastModified
	}
	return a, nil
}

// Delete removes the object at key. Deleting a missing object is not an
// error (S3 answers 204 either way; a server that says NoSuchKey is
// tolerated too).
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.objectKey("delete", key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil && !isNotFound(err) {
		return s.wrap("delete", k, err)
	}
	return nil
}

// URL returns a presigned GET URL for key, valid for Options.PresignExpiry.
// It does not check that the object exists. The URL is a bearer credential:
// never log it.
func (s *Store) URL(ctx context.Context, key string) (string, error) {
	k, err := s.objectKey("presign", key)
	if err != nil {
		return "", err
	}
	if s.presign == nil {
		return "", fmt.Errorf("s3blob presign %s: no presigner configured (Options.Presigner)", s.where(k))
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k},
		s3.WithPresignExpires(s.opts.PresignExpiry))
	if err != nil {
		return "", fmt.Errorf("s3blob presign %s: %w", s.where(k), err)
	}
	return req.URL, nil
}

func (s *Store) where(k string) string { return "s3://" + s.bucket + "/" + k }

// wrap adds the operation and object to err, turning S3's "no such key"
// answers into blob.ErrNotFound.
func (s *Store) wrap(op, k string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3blob %s %s: %w", op, s.where(k), blob.ErrNotFound)
	}
	return fmt.Errorf("s3blob %s %s: %w", op, s.where(k), err)
}

// isNotFound reports whether err says the object does not exist: NoSuchKey
// from GetObject, NotFound (a bare 404) from HeadObject. Without
// s3:ListBucket on the bucket, S3 answers 403 AccessDenied for a missing
// key instead, which stays an ordinary (temporary) error.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf)
}
