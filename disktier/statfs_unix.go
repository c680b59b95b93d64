//go:build linux || darwin || freebsd || netbsd || openbsd

package disktier

import "golang.org/x/sys/unix"

// filesystemSize returns the size of the filesystem holding dir (or the
// nearest ancestor of dir that exists).
func filesystemSize(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(existingParent(dir), &st); err != nil {
		return 0, false
	}
	return int64(st.Blocks) * int64(st.Bsize), true
}
