//go:build !linux

package hugepage

const supported = false

func madviseHuge(addr, n uintptr) bool { return false }

// Mode returns the system's transparent huge page setting: "" outside
// Linux.
func Mode() string { return "" }
