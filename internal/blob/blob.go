// Package blob is the port to Postern's durable object store: raw messages,
// envelope sidecars, parsed JSON and attachments, under keys that derive from
// the message id. Drivers: fsblob (a local directory) and s3blob (Amazon S3).
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) by Get and Stat when no object has the key.
var ErrNotFound = errors.New("blob: not found")

// Store is a durable key/value store for objects.
//
// Put is atomic and durable: when it returns nil the whole object survives a
// crash of any process, and readers see either the previous object or the
// new one, never a part. When it returns an error (including one returned by
// reading r, or ctx ending) no new object is visible. Put consumes r as a
// stream and must not hold a whole object in memory. Putting the same key
// again replaces the object, so retried stages are idempotent.
//
// Keys are slash-separated paths of [A-Za-z0-9._/-]; no element is "." or "..".
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, opts *PutOptions) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Attrs, error)
	Delete(ctx context.Context, key string) error
}

// PutOptions are optional object attributes.
type PutOptions struct {
	ContentType string
}

// Attrs describe a stored object.
type Attrs struct {
	Size    int64
	ModTime time.Time
}

// ValidKey reports whether key is acceptable to every driver.
func ValidKey(key string) bool {
	if key == "" || key[0] == '/' || key[len(key)-1] == '/' {
		return false
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i == len(key) || key[i] == '/' {
			el := key[start:i]
			if el == "" || el == "." || el == ".." {
				return false
			}
			start = i + 1
			continue
		}
		c := key[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// ContextReader fails reads once ctx has ended, so a long copy (a Put of a
// large message) stops within one Read of a cancellation.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
