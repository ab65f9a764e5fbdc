package s3blob

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// fakeAPI implements the upload calls with function fields; other methods
// panic through the nil embedded interface.
type fakeAPI struct {
	API
	uploadPart func(ctx context.Context, in *s3.UploadPartInput) error
	abort      func(ctx context.Context) error
}

func (f *fakeAPI) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return &s3.CreateMultipartUploadOutput{UploadId: ptr("upload-1")}, nil
}

func (f *fakeAPI) UploadPart(ctx context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if err := f.uploadPart(ctx, in); err != nil {
		return nil, err
	}
	return &s3.UploadPartOutput{ETag: ptr(`"etag"`)}, nil
}

func (f *fakeAPI) CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (f *fakeAPI) AbortMultipartUpload(ctx context.Context, _ *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return &s3.AbortMultipartUploadOutput{}, f.abort(ctx)
}

// Memory per Put must not grow with the object: a 160 MiB body may cost a
// few parts of allocation (about 26 MiB; 36 MiB under -race), not 160 MiB. Not parallel: it reads the process's
// allocation counter.
func TestPutMemoryIndependentOfSize(t *testing.T) {
	const size = 160 << 20
	var parts, bytesSeen atomic.Int64
	f := &fakeAPI{uploadPart: func(_ context.Context, in *s3.UploadPartInput) error {
		n, err := io.Copy(io.Discard, in.Body)
		parts.Add(1)
		bytesSeen.Add(n)
		return err
	}}
	s := New(f, "bucket", Options{})
	var seed [32]byte
	body := io.LimitReader(rand.NewChaCha8(seed), size)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := s.Put(t.Context(), "big", onlyReader{body}, nil); err != nil {
		t.Fatalf("Put: %v", err)
	}
	runtime.ReadMemStats(&after)

	if bytesSeen.Load() != size || parts.Load() != size/DefaultPartSize {
		t.Fatalf("uploaded %d bytes in %d parts, want %d in %d", bytesSeen.Load(), parts.Load(), size, size/DefaultPartSize)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	// (Concurrency+1) pooled parts, the growth of the first part's buffer,
	// and slack.
	const limit = 12 * DefaultPartSize
	t.Logf("a %d MiB Put allocated %.1f MiB", size>>20, float64(alloc)/(1<<20))
	if alloc > limit {
		t.Fatalf("a %d MiB Put allocated %d MiB, want at most %d MiB", size>>20, alloc>>20, limit>>20)
	}
}

// The abort after a cancelled Put must not use the cancelled context.
func TestPutAbortsOnFreshContextAfterCancel(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		aborted  int
		abortErr error
	)
	f := &fakeAPI{
		uploadPart: func(ctx context.Context, in *s3.UploadPartInput) error {
			_, _ = io.Copy(io.Discard, in.Body)
			return ctx.Err()
		},
		abort: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			aborted++
			abortErr = ctx.Err()
			return abortErr
		},
	}
	s := New(f, "bucket", Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	body := &cancelAfter{r: io.LimitReader(rand.NewChaCha8([32]byte{}), 30<<20), n: 6 << 20, cancel: cancel}
	err := s.Put(ctx, "k", body, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if aborted != 1 || abortErr != nil {
		t.Fatalf("AbortMultipartUpload called %d times, its context error %v; want once with a live context", aborted, abortErr)
	}
}
