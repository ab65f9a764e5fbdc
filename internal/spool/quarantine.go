package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/postern/postern/internal/atomicfile"
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
	if err := atomicfile.WriteFile(path, io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(payload)), 0o600); err != nil {
		return path, false, fmt.Errorf("spool: quarantine %s: %w", name, err)
	}
	return path, true, nil
}
