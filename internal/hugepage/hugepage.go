package hugepage

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

const (
	// MinSize is the smallest buffer Make and Clone advise for: smaller
	// objects share the allocator's spans with others, large ones have
	// pages of their own.
	MinSize = 32 << 10
	// chunkSize is the unit the Go runtime maps its heap in
	// (pallocChunkBytes), and the unit of advice.
	chunkSize = 4 << 20
)

var (
	disabled atomic.Bool
	advised  sync.Map // chunk start address → struct{}
	nAdvised atomic.Int64
)

// SetEnabled turns the advice for huge pages on (the default) or off.
// Chunks advised already keep it.
func SetEnabled(on bool) { disabled.Store(!on) }

// Enabled reports whether Make and Clone ask for huge pages: SetEnabled
// left them on and the system honours the advice (Mode is "always" or
// "madvise").
func Enabled() bool {
	m := Mode()
	return !disabled.Load() && (m == "always" || m == "madvise")
}

// State sums up Enabled for INFO and the logs: "yes" (advice given and
// honoured), "no" (SetEnabled(false)) or "unavailable" (the system ignores
// the advice: see Mode).
func State() string {
	switch {
	case Enabled():
		return "yes"
	case disabled.Load():
		return "no"
	}
	return "unavailable"
}

// advisedBytes returns the bytes of heap advised for huge pages so far.
func advisedBytes() int64 { return nAdvised.Load() * chunkSize }

// Make returns a zeroed buffer of length and capacity n, as make does,
// whose memory is advised for huge pages when n is at least MinSize.
func Make(n int) []byte {
	b := make([]byte, n)
	Advise(b)
	return b
}

// Clone returns a copy of b (never nil), made by Make.
func Clone(b []byte) []byte {
	out := Make(len(b))
	copy(out, b)
	return out
}

// Advise asks for huge pages behind the heap chunks b's capacity lies in,
// unless it is smaller than MinSize, advice is off, or each chunk was
// advised already. b must be memory of the Go heap (Make's buffers are);
// only its pages not yet touched get huge pages.
func Advise(b []byte) {
	if cap(b) < MinSize || disabled.Load() || !supported {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := start + uintptr(cap(b))
	for c := start &^ (chunkSize - 1); c < end; c += chunkSize {
		if _, ok := advised.Load(c); ok {
			continue
		}
		if _, loaded := advised.LoadOrStore(c, struct{}{}); loaded {
			continue
		}
		if madviseHuge(c, chunkSize) {
			nAdvised.Add(1)
		}
	}
}
