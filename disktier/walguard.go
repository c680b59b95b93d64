package disktier

import (
	"errors"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walGuardFS is the file system Pebble runs on: Options.FS with the WAL's
// I/O errors kept from Pebble.
//
// Why: Pebble cannot survive a WAL error that happens while it rotates the
// WAL (memtable full, a batch larger than half a memtable, a flush). In
// rotateWAL (db.go) it releases DB.mu, closes the old log writer and calls
// panic(err) if that fails, or if creating the next WAL file or syncing the
// directory fails; the callers (commitWrite, AsyncFlush, the delayed-flush
// goroutine) then run their deferred DB.mu.Unlock on an unlocked mutex, a
// fatal error no recover can catch. After a failed WAL write outside a
// rotation, the LogWriter keeps the error and the next rotation panics the
// same way.
//
// So a WAL file's write, sync or close error is reported to the store (which
// stops writing to the instance and fails the commit in flight) and hidden
// from Pebble; from then on the file discards every write, so that it stays
// a clean prefix of what was acknowledged: Pebble's WAL replay stops at its
// torn tail. A WAL that cannot be created is replaced by a file that
// discards everything, and a failed directory sync is reported and hidden
// the same way. Nothing acknowledged to a caller is lost: every commit
// checks for a fault reported while it ran.
type walGuardFS struct {
	vfs.FS
	onFault func(error)
}

var errDiscarded = errors.New("disktier: WAL file discarded after a fault")

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs *walGuardFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if !isWAL(name) {
		return f, err
	}
	if err != nil {
		fs.onFault(err)
		f := &walFile{onFault: fs.onFault}
		f.poisoned.Store(true)
		return f, nil
	}
	return &walFile{File: f, onFault: fs.onFault}, nil
}

func (fs *walGuardFS) OpenDir(name string) (vfs.File, error) {
	d, err := fs.FS.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return &guardedDir{File: d, onFault: fs.onFault}, nil
}

// Unwrap returns the wrapped FS (see vfs.Root).
func (fs *walGuardFS) Unwrap() vfs.FS { return fs.FS }

// walFile is a WAL file whose I/O errors are reported and hidden. File is
// nil for a WAL that could not be created.
type walFile struct {
	vfs.File
	onFault  func(error)
	poisoned atomic.Bool
}

func (f *walFile) fault(err error) {
	if f.poisoned.CompareAndSwap(false, true) {
		f.onFault(err)
	}
}

func (f *walFile) Write(p []byte) (int, error) {
	if !f.poisoned.Load() {
		if _, err := f.File.Write(p); err != nil {
			f.fault(err)
		}
	}
	return len(p), nil
}

func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.poisoned.Load() {
		if _, err := f.File.WriteAt(p, off); err != nil {
			f.fault(err)
		}
	}
	return len(p), nil
}

func (f *walFile) sync(do func() error) error {
	if !f.poisoned.Load() {
		if err := do(); err != nil {
			f.fault(err)
		}
	}
	return nil
}

func (f *walFile) Sync() error     { return f.sync(func() error { return f.File.Sync() }) }
func (f *walFile) SyncData() error { return f.sync(func() error { return f.File.SyncData() }) }

func (f *walFile) SyncTo(length int64) (bool, error) {
	full := false
	_ = f.sync(func() error {
		var err error
		full, err = f.File.SyncTo(length)
		return err
	})
	return full, nil
}

// walPreallocMax caps the space reserved ahead of a WAL's writes. Pebble
// asks for 1.1 × MemTableSize per WAL (up to 70 MiB here, and it keeps
// several WALs), reserved with fallocate(KEEP_SIZE): invisible in the
// files' sizes, so outside the MaxBytes accounting, and on a filesystem
// smaller than MaxBytes it could fill the disk by itself so that the flush
// that would free it could not run. 1 MiB keeps the benefit (fewer extent
// allocations while appending) at a bounded cost: BenchmarkWALPrealloc,
// capped ÷ Pebble's size in one run, 0.86–0.94 of the write throughput
// with 1 KB records, 0.98–1.03 with 118 KB ones.
var walPreallocMax int64 = 1 << 20 // a variable for BenchmarkWALPrealloc

func (f *walFile) Preallocate(off, n int64) error {
	if f.File == nil {
		return nil
	}
	_ = f.File.Preallocate(off, min(n, walPreallocMax)) // an optimization; a real shortage shows on Write
	return nil
}

func (f *walFile) Close() error {
	if f.File == nil {
		return nil
	}
	if err := f.File.Close(); err != nil {
		f.fault(err)
	}
	return nil
}

func (f *walFile) Stat() (vfs.FileInfo, error) {
	if f.File == nil {
		return nil, errDiscarded
	}
	return f.File.Stat()
}

func (f *walFile) Read(p []byte) (int, error) {
	if f.File == nil {
		return 0, errDiscarded
	}
	return f.File.Read(p)
}

func (f *walFile) ReadAt(p []byte, off int64) (int, error) {
	if f.File == nil {
		return 0, errDiscarded
	}
	return f.File.ReadAt(p, off)
}

func (f *walFile) Prefetch(off, n int64) error {
	if f.File == nil {
		return nil
	}
	return f.File.Prefetch(off, n)
}

func (f *walFile) Fd() uintptr {
	if f.File == nil {
		return vfs.InvalidFd
	}
	return f.File.Fd()
}

// guardedDir is a directory handle whose Sync errors are reported and
// hidden (Pebble syncs the directory after creating a WAL, in rotateWAL).
type guardedDir struct {
	vfs.File
	onFault func(error)
}

func (d *guardedDir) Sync() error {
	if err := d.File.Sync(); err != nil {
		d.onFault(err)
	}
	return nil
}
