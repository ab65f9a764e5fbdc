//go:build !linux

package fsblob

import (
	"errors"
	"os"
)

// syncfsSupported reports whether SyncGroup can run here: syncfs(2) is
// Linux's, and sync(2) elsewhere does not promise to wait for the flush.
const syncfsSupported = false

func syncfs(*os.File) error { return errors.New("syncfs: not supported on this platform") }
