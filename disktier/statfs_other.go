//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package disktier

// filesystemSize is not known on this platform: MaxBytes is used as given.
func filesystemSize(string) (int64, bool) { return 0, false }
