package fsblob

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncfsSupported reports whether SyncGroup can run here.
const syncfsSupported = true

// syncfs flushes every dirty inode and the journal of the filesystem holding
// f in one call, which is what lets one flush cover many writers.
func syncfs(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("syncfs", serr)
	}
	return nil
}
