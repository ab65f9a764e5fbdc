package dkimsign

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// spool holds a message while it is signed: in memory up to limit bytes,
// then in a temporary file (mode 0600, as files holding mail are).
type spool struct {
	limit int64
	dir   string

	mem  bytes.Buffer
	f    *os.File
	name string // f's path while it still has one; "" once removed
	n    int64
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && int64(s.mem.Len()+len(p)) > s.limit {
		f, err := os.CreateTemp(s.dir, "postern-dkim-*.eml")
		if err != nil {
			return 0, fmt.Errorf("dkim sign: spool message: %w", err)
		}
		s.f, s.name = f, f.Name()
		// Unlinked now, the file vanishes with its descriptor even if the
		// process dies; where that is refused (Windows), Close removes it.
		if os.Remove(s.name) == nil {
			s.name = ""
		}
		if _, err := s.mem.WriteTo(f); err != nil {
			return 0, fmt.Errorf("dkim sign: spool message: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	var n int
	var err error
	if s.f != nil {
		n, err = s.f.Write(p)
		if err != nil {
			err = fmt.Errorf("dkim sign: spool message: %w", err)
		}
	} else {
		n, err = s.mem.Write(p)
	}
	s.n += int64(n)
	return n, err
}

// Len is the number of bytes written.
func (s *spool) Len() int64 { return s.n }

// Reader returns what was written, from the start.
func (s *spool) Reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("dkim sign: rewind spool: %w", err)
	}
	return io.LimitReader(s.f, s.n), nil
}

func (s *spool) Close() error {
	s.mem = bytes.Buffer{}
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	if s.name != "" {
		if rerr := os.Remove(s.name); err == nil {
			err = rerr
		}
	}
	s.f, s.name = nil, ""
	return err
}
