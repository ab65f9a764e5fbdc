package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// names lists dir's entries, hidden ones included.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func wantOnly(t *testing.T, dir string, want ...string) {
	t.Helper()
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q (a temp file left behind?)", dir, got, want)
	}
}

func wantContent(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s holds %q, want %q", path, got, want)
	}
}

func TestWriteFileModes(t *testing.T) {
	t.Parallel()
	for _, perm := range []fs.FileMode{0o600, 0o640, 0o644, 0o400} {
		dir := t.TempDir()
		path := filepath.Join(dir, "f")
		if err := WriteFile(path, strings.NewReader("hello"), perm); err != nil {
			t.Fatal(err)
		}
		wantContent(t, path, "hello")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), perm)
		}
		wantOnly(t, dir, "f")
	}
}

func TestWriteFileReplaces(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, s := range []string{"first, longer content", "second"} {
		if err := WriteFile(path, strings.NewReader(s), 0o600); err != nil {
			t.Fatal(err)
		}
		wantContent(t, path, s)
	}
	wantOnly(t, dir, "f")
}

// failingReader yields some bytes, then fails.
type failingReader struct {
	sent bool
	err  error
}

func (r *failingReader) Read(b []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(b, "partial "), nil
	}
	return 0, r.err
}

func TestWriteFileReaderErrorKeepsOldFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, strings.NewReader("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	synced := 0
	err := writeFile(path, &failingReader{err: boom}, 0o644, func(string) error { synced++; return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want one wrapping %v", err, boom)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	wantContent(t, path, "old")
	wantOnly(t, dir, "f")
	if synced != 0 {
		t.Errorf("directory synced %d times after a failed write, want 0", synced)
	}

	// No old file: nothing appears.
	fresh := filepath.Join(dir, "g")
	if err := WriteFile(fresh, &failingReader{err: boom}, 0o600); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	wantOnly(t, dir, "f")
}

// TestWriteFileAppearsWhole stops the reader halfway and checks that the
// target does not show the half-written content.
func TestWriteFileAppearsWhole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFile(path, strings.NewReader("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- WriteFile(path, pr, 0o600) }()
	if _, err := pw.Write([]byte("new, first half; ")); err != nil { // returns once WriteFile has read it
		t.Fatal(err)
	}
	wantContent(t, path, "old")
	if _, err := pw.Write([]byte("second half")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, path, "old")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantContent(t, path, "new, first half; second half")
	wantOnly(t, dir, "f")
}

func TestWriteFileSyncsDirAfterRename(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	var synced []string
	err := writeFile(path, strings.NewReader("x"), 0o600, func(d string) error {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("directory synced before the rename: %v", err)
		}
		synced = append(synced, d)
		return SyncDir(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || filepath.Clean(synced[0]) != dir {
		t.Errorf("synced %q, want [%s]", synced, dir)
	}
}

func TestWriteFileDirSyncError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	boom := errors.New("dir sync failed")
	err := writeFile(path, strings.NewReader("x"), 0o600, func(string) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want one wrapping %v", err, boom)
	}
	wantContent(t, path, "x") // in place, not durable
	wantOnly(t, dir, "f")
}

func TestWriteFileRenameError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "d")
	// A non-empty directory cannot be renamed over.
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, strings.NewReader("x"), 0o600); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	wantOnly(t, dir, "d")
}

func TestWriteFileMissingDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	err := WriteFile(filepath.Join(dir, "no", "f"), strings.NewReader("x"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	wantOnly(t, dir)
}

func TestPendingNamedAfterWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := Create(dir, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Abort()
	if _, err := io.Copy(p, strings.NewReader("body")); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); len(got) != 1 || !strings.HasPrefix(got[0], ".") {
		t.Errorf("before Commit %s holds %q, want one hidden temp file", dir, got)
	}
	if err := p.Commit("named.eml"); err != nil {
		t.Fatal(err)
	}
	p.Abort() // no-op after Commit
	wantContent(t, filepath.Join(dir, "named.eml"), "body")
	if fi, _ := os.Stat(filepath.Join(dir, "named.eml")); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	wantOnly(t, dir, "named.eml")
	if _, err := p.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := p.Commit("again"); err == nil {
		t.Error("second Commit succeeded")
	}
	wantOnly(t, dir, "named.eml")
}

func TestPendingAbort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := Create(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	p.Abort()
	p.Abort()
	wantOnly(t, dir)
	if err := p.Commit("f"); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	wantOnly(t, dir)
}

func TestPendingBadName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", ".", "..", "a/b", "../f"} {
		dir := t.TempDir()
		p, err := Create(dir, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Commit(name); err == nil {
			t.Errorf("Commit(%q) succeeded", name)
		}
		wantOnly(t, dir)
	}
}

func TestSyncDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	err := SyncDir(filepath.Join(dir, "missing"))
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Fatalf("SyncDir(missing) = %v, want a *fs.PathError for fs.ErrNotExist", err)
	}
}

func TestWriteFileBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	data := bytes.Repeat([]byte("0123456789"), 100_000) // larger than one copy buffer
	if err := WriteFile(path, bytes.NewReader(data), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, want %d equal to those written", len(got), len(data))
	}
}
