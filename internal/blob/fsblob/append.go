package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Append adds b at the end of key's object, creating it (and its missing
// directories) if need be. It is for records that only grow and are best
// effort, such as a message's trace: unlike Put it is not atomic (a crash
// can leave a part of b, or a line cut short) and it does not wait for the
// disk, so the object is durable only after a later SyncAll or the
// kernel's own writeback. Appends to one key must not run concurrently.
//
// A previous append cut short by a crash left no line end; Append then
// starts b on a line of its own, so a reader of lines loses only the cut one.
func (s *Store) Append(ctx context.Context, key string, b []byte) error {
	dst, err := s.Path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsblob: append %s: %w", key, err)
	}
	f, err := s.openMaking(key, dst, os.O_RDWR|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return fmt.Errorf("fsblob: append %s: %w", key, err)
	}
	if fi, serr := f.Stat(); serr == nil && fi.Size() > 0 {
		var last [1]byte
		if _, rerr := f.ReadAt(last[:], fi.Size()-1); rerr == nil && last[0] != '\n' {
			b = append([]byte{'\n'}, b...)
		}
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsblob: append %s: %w", key, err)
	}
	return nil
}

// openMaking opens dst, key's path, with flag, first making key's missing
// directories if the open finds one missing.
func (s *Store) openMaking(key, dst string, flag int) (*os.File, error) {
	f, err := os.OpenFile(dst, flag, filePerm)
	if errors.Is(err, fs.ErrNotExist) {
		created, merr := s.mkdirParents(key)
		s.pending.release(created...)
		if merr != nil {
			return nil, merr
		}
		f, err = os.OpenFile(dst, flag, filePerm)
	}
	return f, err
}
