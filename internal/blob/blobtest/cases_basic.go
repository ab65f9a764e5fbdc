package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
)

func testRoundTripBinary(t *testing.T, ctx context.Context, s blob.Store) {
	data := make([]byte, 0, 256*3)
	for range 3 {
		for b := range 256 {
			data = append(data, byte(b))
		}
	}
	data = append(data, "\r\n.\r\n\x00"...)
	const key = "m/ab/01HZ/raw.eml"
	if err := s.Put(ctx, key, onlyReader{bytes.NewReader(data)}, &blob.PutOptions{ContentType: "message/rfc822"}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	wantContent(t, ctx, s, key, data)
}

func testEmptyObject(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "empty"
	put(t, ctx, s, key, nil)
	wantContent(t, ctx, s, key, []byte{})
	a, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if a.Size != 0 {
		t.Fatalf("Stat size = %d, want 0", a.Size)
	}
}

// chunkyReader returns short reads of varying sizes, as a network body does.
type chunkyReader struct {
	r   io.Reader
	rnd *rand.Rand
}

func (c chunkyReader) Read(p []byte) (int, error) {
	if n := 1 + c.rnd.IntN(70_000); n < len(p) {
		p = p[:n]
	}
	return c.r.Read(p)
}

func testLargeStreamed(t *testing.T, ctx context.Context, s blob.Store) {
	const size = 6<<20 + 123 // not a multiple of any buffer size
	const key = "big/object"
	var seed [32]byte
	seed[0] = 7
	src := io.LimitReader(rand.NewChaCha8(seed), size)
	sum := sha256.New()
	body := chunkyReader{io.TeeReader(src, sum), rand.New(rand.NewPCG(1, 2))}
	if err := s.Put(ctx, key, body, nil); err != nil {
		t.Fatalf("Put: %v", err)
	}
	want := sum.Sum(nil)

	rc, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer func() { _ = rc.Close() }()
	gotSum := sha256.New()
	n, err := io.Copy(gotSum, rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if n != size || !bytes.Equal(gotSum.Sum(nil), want) {
		t.Fatalf("Get returned %d bytes with sha256 %x, want %d bytes with %x", n, gotSum.Sum(nil), size, want)
	}
	a, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if a.Size != size {
		t.Fatalf("Stat size = %d, want %d", a.Size, size)
	}
}

func testStat(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "m/cd/01J0/envelope.json"
	data := bytes.Repeat([]byte("0123456789"), 1001)
	put(t, ctx, s, key, data)
	a, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if a.Size != int64(len(data)) {
		t.Fatalf("Stat size = %d, want %d", a.Size, len(data))
	}
	// Loose bounds: a remote server's clock and second granularity vary.
	if d := time.Since(a.ModTime); a.ModTime.IsZero() || d > time.Hour || d < -time.Hour {
		t.Fatalf("Stat ModTime = %v, want about now", a.ModTime)
	}
}

func testMissing(t *testing.T, ctx context.Context, s blob.Store) {
	wantNotFound(t, ctx, s, "never/written")
	put(t, ctx, s, "present", []byte("x"))
	wantNotFound(t, ctx, s, "present2")
	wantNotFound(t, ctx, s, "present/below")
}

// A key that is a path prefix of stored keys names no object (S3 has no
// directories; a filesystem driver must not report one as an object).
func testPrefixNotObject(t *testing.T, ctx context.Context, s blob.Store) {
	put(t, ctx, s, "dir/sub/leaf", []byte("leaf"))
	wantNotFound(t, ctx, s, "dir")
	wantNotFound(t, ctx, s, "dir/sub")
	if err := s.Delete(ctx, "dir/sub"); err != nil {
		t.Fatalf("Delete of a prefix: %v", err)
	}
	wantContent(t, ctx, s, "dir/sub/leaf", []byte("leaf"))
}

func testOverwrite(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "over/write"
	long := bytes.Repeat([]byte("old "), 5000)
	short := []byte("new")
	put(t, ctx, s, key, long)
	put(t, ctx, s, key, short) // shorter: a driver that does not truncate shows old bytes
	wantContent(t, ctx, s, key, short)
	if a, err := s.Stat(ctx, key); err != nil || a.Size != int64(len(short)) {
		t.Fatalf("Stat = %+v, %v; want size %d", a, err, len(short))
	}
	put(t, ctx, s, key, long)
	wantContent(t, ctx, s, key, long)
}

func testDelete(t *testing.T, ctx context.Context, s blob.Store) {
	const key = "m/ef/01J1/parsed.json"
	put(t, ctx, s, key, []byte(`{"v":1}`))
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, ctx, s, key)
	// The key is usable again after a delete.
	put(t, ctx, s, key, []byte(`{"v":2}`))
	wantContent(t, ctx, s, key, []byte(`{"v":2}`))
}

func testDeleteMissing(t *testing.T, ctx context.Context, s blob.Store) {
	if err := s.Delete(ctx, "not/there"); err != nil {
		t.Fatalf("Delete of a missing key = %v, want nil", err)
	}
	put(t, ctx, s, "once", []byte("x"))
	for i := range 2 {
		if err := s.Delete(ctx, "once"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
}

func testDeleteKeepsSiblings(t *testing.T, ctx context.Context, s blob.Store) {
	put(t, ctx, s, "m/aa/ID1/raw.eml", []byte("raw"))
	put(t, ctx, s, "m/aa/ID1/envelope.json", []byte("env"))
	put(t, ctx, s, "m/aa/ID2/raw.eml", []byte("raw2"))
	for _, k := range []string{"m/aa/ID1/raw.eml", "m/aa/ID1/envelope.json"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
	}
	wantContent(t, ctx, s, "m/aa/ID2/raw.eml", []byte("raw2"))
	// Writing again under the emptied prefix works.
	put(t, ctx, s, "m/aa/ID1/raw.eml", []byte("again"))
	wantContent(t, ctx, s, "m/aa/ID1/raw.eml", []byte("again"))
}

func testUnusualKeys(t *testing.T, ctx context.Context, s blob.Store) {
	// Valid keys that resemble driver internals or path tricks.
	keys := []string{"x", "...", ".hidden", "a/.../b", "tmp/put-1", "objects/x", ".tmp/x", "A-Z_0.9/-_.", "a..b/c"}
	for i, k := range keys {
		if !blob.ValidKey(k) {
			t.Fatalf("test bug: %q is not a valid key", k)
		}
		put(t, ctx, s, k, []byte{byte(i)})
	}
	for i, k := range keys {
		wantContent(t, ctx, s, k, []byte{byte(i)})
	}
}
