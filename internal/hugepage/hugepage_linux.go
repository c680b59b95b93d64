package hugepage

import (
	"bytes"
	"os"
	"sync"
	"syscall"
)

const supported = true

// madvHugepage is MADV_HUGEPAGE (not in package syscall).
const madvHugepage = 14

// madviseHuge advises [addr, addr+n) for huge pages. It reports false if
// the kernel refused (no transparent huge pages, or a range not mapped).
func madviseHuge(addr, n uintptr) bool {
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, n, madvHugepage)
	return errno == 0
}

var mode = sync.OnceValue(func() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	return selected(b)
})

// Mode returns the system's transparent huge page setting ("always",
// "madvise" or "never"), or "" where there is none.
func Mode() string { return mode() }

// selected returns the bracketed word of a sysfs choice such as
// "always [madvise] never".
func selected(b []byte) string {
	i := bytes.IndexByte(b, '[')
	j := bytes.IndexByte(b, ']')
	if i < 0 || j < i {
		return ""
	}
	return string(b[i+1 : j])
}
