package fsblob

import (
	"context"
	"os"
	"testing"
)

func TestAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, t.TempDir(), SyncEach)
	const key = "m/ab/01JEXAMPLE/trace/parse.jsonl" // its directories do not exist yet
	for _, line := range []string{"one\n", "two\n"} {
		if err := s.Append(ctx, key, []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string { return readObject(t, s, key) }
	if got := read(); got != "one\ntwo\n" {
		t.Fatalf("after two appends: %q", got)
	}
	path, _ := s.Path(key)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != filePerm {
		t.Fatalf("object mode %v, %v; want %v", fi.Mode().Perm(), err, os.FileMode(filePerm))
	}

	// A line a crash cut short: the next append starts a line of its own.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("thr")
	f.Close()
	if err := s.Append(ctx, key, []byte("four\n")); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "one\ntwo\nthr\nfour\n" {
		t.Fatalf("after a cut line: %q", got)
	}

	if err := s.Append(ctx, "../escape", []byte("x")); err == nil {
		t.Error("an invalid key was appended to")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Append(cctx, key, []byte("five\n")); err == nil {
		t.Error("appended after the context ended")
	}
}
