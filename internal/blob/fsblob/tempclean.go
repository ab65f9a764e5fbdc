package fsblob

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// staleTempAge is how old a temp file must be for New to remove it. Every Put
// removes its own temp file, so anything older is debris of a crash; the
// margin spares Puts in flight in another process sharing the directory.
const staleTempAge = time.Minute

// removeStaleTemps deletes crash debris from the temp directory.
func (s *Store) removeStaleTemps(log *slog.Logger) error {
	ents, err := os.ReadDir(s.temp)
	if err != nil {
		return fmt.Errorf("fsblob: read temp dir: %w", err)
	}
	cutoff := time.Now().Add(-staleTempAge)
	removed := 0
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if info.IsDir() || info.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(s.temp, e.Name())); err != nil && !isNotFound(err) {
			return fmt.Errorf("fsblob: remove stale temp file: %w", err)
		}
		removed++
	}
	if removed > 0 {
		log.Info("removed stale temp files", "dir", s.temp, "count", removed)
	}
	return nil
}
