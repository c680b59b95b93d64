package disktier

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// fsShare is the part of its filesystem a store may use: MaxBytes is
// lowered to it when the filesystem is smaller than MaxBytes allows for
// (the directory may pass MaxBytes by 10% while Pebble flushes and
// compacts, so 90% keeps it from filling the filesystem by itself).
const fsShare = 0.9

// fitFilesystem lowers o.MaxBytes to fsShare of the size of the filesystem
// holding o.Dir when it is larger, deriving the sizes that depend on it
// again (unless they were given). It returns the filesystem's size and
// whether it lowered MaxBytes. Stores on other file systems (in memory,
// fault injection) are left alone.
func fitFilesystem(o *Options, given Options) (int64, bool) {
	if o.FS != vfs.Default {
		return 0, false
	}
	size, ok := filesystemSize(o.Dir)
	if !ok {
		return 0, false
	}
	fit := int64(float64(size) * fsShare)
	if o.MaxBytes <= fit {
		return size, false
	}
	o.MaxBytes = fit
	o.CacheSize, o.MemTableSize = given.CacheSize, given.MemTableSize
	o.EnsureDefaults()
	return size, true
}

// existingParent returns dir or its nearest ancestor that exists.
func existingParent(dir string) string {
	for {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return dir
		}
		dir = parent
	}
}
