//go:build unix

package diskspace

import "golang.org/x/sys/unix"

// Free returns the bytes available to unprivileged users on the
// filesystem that holds dir (statfs f_bavail, as df shows).
func Free(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
