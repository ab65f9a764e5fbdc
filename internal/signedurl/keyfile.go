package signedurl

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/postern/postern/internal/atomicfile"
)

// LoadKey returns the key kept in path (unpadded base64url of KeySize
// random bytes, 0600), creating the file when there is none. Deleting the
// file and restarting makes a new key, which revokes every link given out.
func LoadKey(path string) (key []byte, created bool, err error) {
	key, err = readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	dir := filepath.Dir(path)
	cannot := func(err error) error {
		return fmt.Errorf("link signing key: cannot write %s: %w; make data_dir writable by the gateway's user", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, cannot(err)
	}
	key = make([]byte, KeySize)
	rand.Read(key)                                  // never fails (crypto/rand)
	f, err := os.CreateTemp(dir, ".link-key.tmp-*") // 0600
	if err != nil {
		return nil, false, cannot(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(base64.RawURLEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, cannot(err)
	}
	// Linked, not renamed: of two processes starting on one data_dir at
	// once, the second takes the first one's key instead of replacing it
	// under links the first has already given out.
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		key, err = readKey(path)
		return key, false, err
	} else if err != nil {
		return nil, false, cannot(err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return nil, false, cannot(err)
	}
	return key, true, nil
}

func readKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("link signing key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("link signing key: %s has mode %#o, so other users can read it and forge links; run chmod 600 %s, or delete it to have a new key made (links given out so far stop working)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("link signing key: %w", err)
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < KeySize {
		return nil, fmt.Errorf("link signing key: %s does not hold %d bytes in base64url; delete it to have a new key made (links given out so far stop working)", path, KeySize)
	}
	return key, nil
}
