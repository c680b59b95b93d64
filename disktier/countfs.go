package disktier

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// countFS counts the bytes written to the files Pebble opens for writing:
// WAL, sstables, blob files, MANIFEST and OPTIONS files, whether a flush, a
// compaction or a blob file rewrite wrote them. That is what the store hands
// the filesystem, and so, for files synced before they are deleted (every
// Pebble file is), what reaches the device; the filesystem's own writes
// (journal, metadata) and the device's write amplification come on top.
//
// Pebble's own metrics do not add up to it: they leave out blob file
// rewrites, and count the blob bytes of a flush both as flushed and as
// compacted.
type countFS struct {
	vfs.FS
	n *atomic.Int64
}

func (fs countFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.Create(name, category))
}

func (fs countFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return fs.wrap(fs.FS.OpenReadWrite(name, category, opts...))
}

func (fs countFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	return fs.wrap(fs.FS.ReuseForWrite(oldname, newname, category))
}

func (fs countFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return countFile{File: f, n: fs.n}, nil
}

// Unwrap returns the wrapped FS (see vfs.Root).
func (fs countFS) Unwrap() vfs.FS { return fs.FS }

// countFile is a file whose writes are counted in n.
type countFile struct {
	vfs.File
	n *atomic.Int64
}

func (f countFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.n.Add(int64(n))
	return n, err
}

func (f countFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.n.Add(int64(n))
	return n, err
}
