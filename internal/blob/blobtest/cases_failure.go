package blobtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/postern/postern/internal/blob"
)

// errReader fails every read, standing in for a client that drops mid-DATA.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func testFailingReader(t *testing.T, ctx context.Context, s blob.Store) {
	errBody := errors.New("connection reset by device")
	half := bytes.Repeat([]byte("partial "), 128<<10) // 1 MiB before the failure
	failing := func() io.Reader { return onlyReader{io.MultiReader(bytes.NewReader(half), errReader{errBody})} }

	const fresh = "fail/fresh"
	if err := s.Put(ctx, fresh, failing(), nil); err == nil {
		t.Fatal("Put with a failing reader returned nil")
	}
	wantNotFound(t, ctx, s, fresh)

	const existing = "fail/existing"
	old := []byte("the previous object")
	put(t, ctx, s, existing, old)
	if err := s.Put(ctx, existing, failing(), nil); err == nil {
		t.Fatal("Put with a failing reader over an existing object returned nil")
	}
	wantContent(t, ctx, s, existing, old)
}

func testCancelledBefore(t *testing.T, ctx context.Context, s blob.Store) {
	const existing = "cancel/existing"
	old := []byte("kept")
	put(t, ctx, s, existing, old)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cctx, "cancel/fresh", onlyReader{bytes.NewReader([]byte("new"))}, nil); err == nil {
		t.Fatal("Put with a cancelled context returned nil")
	}
	if err := s.Put(cctx, existing, onlyReader{bytes.NewReader([]byte("new"))}, nil); err == nil {
		t.Fatal("Put over an existing object with a cancelled context returned nil")
	}
	wantNotFound(t, ctx, s, "cancel/fresh")
	wantContent(t, ctx, s, existing, old)
}

// cancellingReader cancels its context once after the first n bytes and keeps
// supplying data, so only the driver's own context check can stop the Put.
type cancellingReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n <= 0 && c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	if c.n > 0 && len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func testCancelledDuring(t *testing.T, ctx context.Context, s blob.Store) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	for _, key := range []string{"cancel/during", "cancel/during-existing"} {
		var old []byte
		if key == "cancel/during-existing" {
			old = []byte("kept")
			put(t, ctx, s, key, old)
		}
		cctx, cancel := context.WithCancel(ctx)
		r := &cancellingReader{r: bytes.NewReader(data), n: 64 << 10, cancel: cancel}
		err := s.Put(cctx, key, r, nil)
		cancel()
		if err == nil {
			t.Fatalf("Put(%q) whose context was cancelled mid-stream returned nil", key)
		}
		if old == nil {
			wantNotFound(t, ctx, s, key)
		} else {
			wantContent(t, ctx, s, key, old)
		}
	}
}

func testInvalidKeys(t *testing.T, ctx context.Context, s blob.Store) {
	// Each invalid key with the valid key a careless driver might have
	// written instead (by cleaning the path or stripping slashes).
	keys := []struct{ bad, cleaned string }{
		{"", "probe"},
		{"/abs", "abs"},
		{"trail/", "trail"},
		{"dbl//slash", "dbl/slash"},
		{"./dot", "dot"},
		{"up/../over", "over"},
		{"../escape", "escape"},
		{"..", "probe"},
		{".", "probe"},
		{"sp ace", "probe"},
		{"back\\slash", "probe"},
		{"nul\x00byte", "nul"},
		{"ümlaut", "probe"},
		{"new\nline", "probe"},
	}
	for _, k := range keys {
		if blob.ValidKey(k.bad) {
			t.Fatalf("test bug: %q is a valid key", k.bad)
		}
		if err := s.Put(ctx, k.bad, onlyReader{bytes.NewReader([]byte("x"))}, nil); err == nil {
			t.Errorf("Put(%q) = nil, want an error", k.bad)
		}
		if rc, err := s.Get(ctx, k.bad); err == nil {
			_ = rc.Close()
			t.Errorf("Get(%q) = nil error, want an error", k.bad)
		}
		if _, err := s.Stat(ctx, k.bad); err == nil {
			t.Errorf("Stat(%q) = nil error, want an error", k.bad)
		}
		if err := s.Delete(ctx, k.bad); err == nil {
			t.Errorf("Delete(%q) = nil, want an error", k.bad)
		}
	}
	for _, k := range keys {
		wantNotFound(t, ctx, s, k.cleaned)
	}
}
