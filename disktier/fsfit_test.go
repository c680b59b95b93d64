package disktier

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestMaxBytesFitsFilesystem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet")
	size, ok := filesystemSize(dir)
	if !ok {
		t.Skip("the filesystem's size is not known on this platform")
	}
	fit := int64(float64(size) * fsShare)

	var mu sync.Mutex
	var lines []string
	logger := func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	// A bound larger than the filesystem is lowered, and logged; the sizes
	// derived from it follow.
	s := openTest(t, Options{Dir: dir, MaxBytes: 1 << 60, Logger: logger})
	if got := s.Stats().MaxBytes; got != fit {
		t.Fatalf("MaxBytes %d on a filesystem of %d bytes, want %d", got, size, fit)
	}
	if want := max(1*MiB, min(64*MiB, fit/32)); s.opts.MemTableSize != want {
		t.Errorf("MemTableSize %d, want %d (derived from the lowered bound)", s.opts.MemTableSize, want)
	}
	mu.Lock()
	logged := strings.Join(lines, "\n")
	mu.Unlock()
	if !strings.Contains(logged, "MaxBytes lowered from 1152921504606846976 to") {
		t.Errorf("the lowered bound was not logged:\n%s", logged)
	}

	// A bound that fits is kept; so is any bound on another file system.
	if got := openTest(t, Options{MaxBytes: 256 * MiB}).Stats().MaxBytes; got != 256*MiB && fit >= 256*MiB {
		t.Errorf("MaxBytes 256 MiB became %d", got)
	}
	if got := openTest(t, Options{FS: vfs.NewMem(), Dir: "/mem", MaxBytes: 1 << 60}).Stats().MaxBytes; got != 1<<60 {
		t.Errorf("MaxBytes on an in-memory FS became %d", got)
	}
}

func TestSmallMaxBytes(t *testing.T) {
	// The smallest bound is accepted with the default memtable size.
	s := openTest(t, Options{MaxBytes: MinMaxBytes})
	if s.opts.MemTableSize != 1*MiB {
		t.Fatalf("MemTableSize %d with MaxBytes %d", s.opts.MemTableSize, MinMaxBytes)
	}
}
