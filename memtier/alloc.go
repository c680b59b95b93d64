package memtier

// Allocation sizes, for accounting records held by reference at what they
// really cost: the Go allocator rounds a small object up to its size class
// (up to 12.5% more) and a large one (over 32 KiB) up to whole 8 KiB pages.

const (
	maxSmallAlloc = 32 << 10 // the largest object with a size class
	pageSize      = 8 << 10  // the allocator's page
)

// sizeClasses are the allocator's size classes up to maxSmallAlloc, found
// at start-up by asking append how much it allocates (growslice rounds a
// new backing array up to its size class): about 68 allocations, once.
var sizeClasses = func() []int {
	var classes []int
	for n := 1; n <= maxSmallAlloc; {
		c := cap(append([]byte(nil), make([]byte, n)...))
		classes = append(classes, c)
		n = c + 1
	}
	return classes
}()

// allocSize returns the bytes the Go allocator takes for an object of n bytes.
func allocSize(n int) int {
	if n > maxSmallAlloc {
		return (n + pageSize - 1) / pageSize * pageSize
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if sizeClasses[mid] >= n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return sizeClasses[lo]
}
