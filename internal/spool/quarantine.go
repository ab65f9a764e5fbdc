package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// quarantine writes a frame the mover cannot decode, byte for byte as the
// log holds it, to name in the quarantine directory, durably, before the
// mover goes past it (a checkpoint may delete the segment). It reports
// whether the file is new: a rewind or a restart meets the same frame again.
// Files are 0600 in a 0700 directory: they hold mail.
func (m *Mover) quarantine(name string, hdr, payload []byte) (path string, fresh bool, err error) {
	dir := m.s.opts.QuarantineDir
	path = filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return path, false, fmt.Errorf("spool: quarantine %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return path, false, fmt.Errorf("spool: quarantine: %w", err)
	}
	f, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return path, false, fmt.Errorf("spool: quarantine %s: %w", name, err)
	}
	tmp := f.Name()
	_, err = f.Write(hdr)
	if err == nil {
		_, err = f.Write(payload)
	}
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return path, false, fmt.Errorf("spool: quarantine %s: %w", name, err)
	}
	return path, true, nil
}
