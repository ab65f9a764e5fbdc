// Package blobtest is the conformance suite for blob.Store: every driver
// (fsblob, s3blob) runs Run so that they keep one behaviour.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/postern/postern/internal/blob"
)

// caseTimeout bounds each case, so a hung driver fails instead of stalling.
const caseTimeout = 60 * time.Second

// Run runs the conformance cases against stores made by newStore, each case
// as a parallel subtest with a store of its own. newStore must return an
// empty store (a fresh directory, or a fresh bucket or prefix) and register
// any cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, s blob.Store)
	}{
		{"RoundTripBinary", testRoundTripBinary},
		{"EmptyObject", testEmptyObject},
		{"LargeStreamedObject", testLargeStreamed},
		{"StatReportsSizeAndTime", testStat},
		{"MissingKeyIsNotFound", testMissing},
		{"KeyPrefixIsNotAnObject", testPrefixNotObject},
		{"OverwriteReplaces", testOverwrite},
		{"DeleteThenNotFound", testDelete},
		{"DeleteMissingIsNoError", testDeleteMissing},
		{"DeleteKeepsSiblings", testDeleteKeepsSiblings},
		{"FailingReaderLeavesNoObject", testFailingReader},
		{"CancelledContextLeavesNoObject", testCancelledBefore},
		{"CancelDuringPutLeavesNoObject", testCancelledDuring},
		{"InvalidKeysRefused", testInvalidKeys},
		{"UnusualValidKeys", testUnusualKeys},
		{"ConcurrentPutsDistinctKeys", testConcurrentDistinct},
		{"ConcurrentPutGetSameKey", testConcurrentSameKey},
		{"ConcurrentPutDeleteSharedPrefix", testConcurrentSharedPrefix},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
			defer cancel()
			c.fn(t, ctx, newStore(t))
		})
	}
}

// onlyReader hides every method but Read (Seek, WriteTo, Len), so a driver
// cannot size or rewind the body and must stream it.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, ctx context.Context, s blob.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctx, key, onlyReader{bytes.NewReader(data)}, nil); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func get(t *testing.T, ctx context.Context, s blob.Store, key string) []byte {
	t.Helper()
	data, err := read(ctx, s, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return data
}

// read returns key's whole object.
func read(ctx context.Context, s blob.Store, key string) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return data, err
}

// wantContent fails unless key holds exactly want.
func wantContent(t *testing.T, ctx context.Context, s blob.Store, key string, want []byte) {
	t.Helper()
	got := get(t, ctx, s, key)
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %s, want %d bytes %s", key, len(got), preview(got), len(want), preview(want))
	}
}

// wantNotFound fails unless both Get and Stat of key report blob.ErrNotFound.
func wantNotFound(t *testing.T, ctx context.Context, s blob.Store, key string) {
	t.Helper()
	rc, err := s.Get(ctx, key)
	if err == nil {
		data, _ := io.ReadAll(rc)
		_ = rc.Close()
		t.Fatalf("Get(%q) = %d bytes %s, want ErrNotFound", key, len(data), preview(data))
	}
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Get(%q) error = %v, want one wrapping blob.ErrNotFound", key, err)
	}
	if a, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want an error wrapping blob.ErrNotFound", key, a, err)
	}
}

// preview shows the start of data in failure messages, never all of it.
func preview(b []byte) string {
	const n = 16
	if len(b) > n {
		return fmt.Sprintf("%q...", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
