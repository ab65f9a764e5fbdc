// Package atomicfile writes files that readers see whole or not at all and that survive a crash:
// a temp file in the target's directory, fsync, rename over the target, fsync of the directory.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// WriteFile streams r into path atomically and durably, replacing any file
// already there. The file gets exactly perm (the umask does not apply). If
// WriteFile fails before the rename (r fails, the disk is full), the old file
// at path, if any, is untouched and no temp file is left behind. If only the
// fsync of the directory fails, the new file is in place but may not survive
// a crash; the error says so.
func WriteFile(path string, r io.Reader, perm fs.FileMode) error {
	return writeFile(path, r, perm, SyncDir)
}

func writeFile(path string, r io.Reader, perm fs.FileMode, syncDir func(string) error) error {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	p, err := create(dir, "."+name+".tmp-*", perm, syncDir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer p.Abort()
	if _, err := io.Copy(p.f, r); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return p.Commit(name)
}

// Pending is a file being written in a directory that takes its name only
// when committed, for writers that choose the name from what they wrote
// (a content hash). Until Commit it is a hidden temp file; Abort removes it.
type Pending struct {
	f       *os.File
	dir     string
	perm    fs.FileMode
	done    bool
	syncDir func(string) error
}

var _ io.Writer = (*Pending)(nil)

// Create starts a file in dir that Commit will give its name and perm.
// The caller must call Commit or Abort; deferring Abort is safe.
func Create(dir string, perm fs.FileMode) (*Pending, error) {
	return create(dir, ".tmp-*", perm, SyncDir)
}

func create(dir, pattern string, perm fs.FileMode, syncDir func(string) error) (*Pending, error) {
	f, err := os.CreateTemp(dir, pattern) // 0600 until Commit
	if err != nil {
		return nil, fmt.Errorf("create temp file: %w", err)
	}
	return &Pending{f: f, dir: dir, perm: perm, syncDir: syncDir}, nil
}

// Write writes b to the temp file.
func (p *Pending) Write(b []byte) (int, error) {
	if p.done {
		return 0, errors.New("atomicfile: write after commit or abort")
	}
	return p.f.Write(b)
}

// Commit sets the file's mode, fsyncs and closes it, renames it to name in
// its directory (replacing any file of that name) and fsyncs the directory.
// On an error before the rename the temp file is removed and any file called
// name is untouched; on an error from the directory fsync the file is in
// place but may not survive a crash. Either way the Pending is finished.
func (p *Pending) Commit(name string) (err error) {
	path := filepath.Join(p.dir, name)
	if p.done {
		return fmt.Errorf("write %s: already committed or aborted", path)
	}
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, os.PathSeparator) || strings.ContainsRune(name, '/') {
		p.Abort()
		return fmt.Errorf("write %s: %q is not a file name", path, name)
	}
	p.done = true
	tmp := p.f.Name()
	err = p.f.Chmod(p.perm)
	if err == nil {
		err = p.f.Sync()
	}
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := p.syncDir(p.dir); err != nil {
		return fmt.Errorf("write %s: file in place, but the directory sync failed: %w", path, err)
	}
	return nil
}

// Abort closes and removes the temp file. After Commit it does nothing.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	_ = p.f.Close()
	_ = os.Remove(p.f.Name())
}

// SyncDir fsyncs dir, so that files created, renamed or removed in it
// survive a crash. Its errors are *fs.PathError naming the operation and dir.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
