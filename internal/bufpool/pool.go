package bufpool

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tiercache/tiercache/internal/hugepage"
)

// Options configure a Pool.
type Options struct {
	// MaxBytes is the most memory the pool keeps in buffers that are
	// retired or free; beyond it they are left to the garbage collector.
	// Default 64 MiB.
	MaxBytes int64

	// Poison fills a buffer with PoisonByte when it becomes free, so that
	// a test reading a recycled buffer through a reference it should not
	// hold sees it. Off by default (it costs a pass over the buffer).
	Poison bool
}

// PoisonByte is what Options.Poison fills free buffers with.
const PoisonByte = 0xA5

// EnsureDefaults fills in the zero fields.
func (o *Options) EnsureDefaults() {
	if o.MaxBytes == 0 {
		o.MaxBytes = 64 << 20
	}
}

// Pool recycles large buffers; see the package documentation. A nil *Pool
// is valid: Get allocates, the other methods do nothing, and Retain
// reports true. It is safe for concurrent use.
type Pool struct {
	opts  Options
	epoch atomic.Uint64 // the reclamation epoch; starts at 1 (0 marks an unpinned Guard)

	mu struct {
		sync.Mutex                     // guards the fields below and every buffer's refs and epoch
		bufs       map[uintptr]*buffer // end address → buffer, for every buffer the pool manages
		free       map[int][]*buffer   // size → free buffers of that size, oldest first
		limbo      []*buffer           // retired buffers, in epoch order
		freeBytes  int64               // sum of the free buffers' sizes
		limboBytes int64               // sum of the retired buffers' sizes
	}

	guards struct {
		sync.Mutex // guards list
		list       []*Guard
	}

	gets, reused, retired, dropped atomic.Uint64
}

// buffer is one buffer the pool manages.
type buffer struct {
	b     []byte  // the whole buffer: len(b) is its size class
	end   uintptr // where the slice last handed out ends: its key in Pool.mu.bufs
	refs  int32   // owners; -1 once retired (then in limbo or free)
	done  bool    // the command that read into it has ended
	epoch uint64  // when it was retired
}

// New returns a Pool.
func New(opts Options) *Pool {
	opts.EnsureDefaults()
	p := &Pool{opts: opts}
	p.epoch.Store(1)
	p.mu.bufs = make(map[uintptr]*buffer)
	p.mu.free = make(map[int][]*buffer)
	return p
}

// sizeClass rounds n up to the size buffers are made in: a multiple of
// an eighth of the power of two below it (at most 12.5% more), so that
// values of nearby sizes share buffers.
func sizeClass(n int) int {
	if n <= 4096 {
		return 4096
	}
	step := 1 << (bits.Len(uint(n-1)) - 4) // 2^k < n ≤ 2^(k+1): step 2^(k-3)
	return (n + step - 1) &^ (step - 1)
}

// endOf is the key of the buffer s was cut from: the address where s's
// capacity ends.
func endOf(s []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(s))) + uintptr(cap(s))
}

// Get returns a buffer of length n (and capacity n), reused when one of
// its size class is free. Its contents are undefined. The caller reads
// into it and calls Done when its command ends.
func (p *Pool) Get(n int) []byte {
	if p == nil || n <= 0 {
		return hugepage.Make(n)
	}
	p.gets.Add(1)
	size := sizeClass(n)
	p.mu.Lock()
	b := p.popFreeLocked(size)
	if b == nil && p.mu.limboBytes > 0 {
		p.reclaimLocked()
		b = p.popFreeLocked(size)
	}
	if b == nil {
		p.mu.Unlock()
		b = &buffer{b: hugepage.Make(size)}
		p.mu.Lock()
	} else {
		p.reused.Add(1)
		delete(p.mu.bufs, b.end)
	}
	b.refs, b.done, b.epoch = 0, false, 0
	s := b.b[:n:n]
	b.end = endOf(s)
	p.mu.bufs[b.end] = b
	p.mu.Unlock()
	return s
}

// Retain makes the caller an owner of the buffer s (a record built in it)
// was cut from, and returns the buffer's size. For memory the pool does not
// manage it returns 0, true: the garbage collector keeps it alive. It
// returns false when the buffer is retired: the caller held s past its last
// owner and must keep a copy instead. The caller must hold s as an owner or
// under a pinned Guard.
func (p *Pool) Retain(s []byte) (size int, ok bool) {
	if p == nil || cap(s) == 0 {
		return 0, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.mu.bufs[endOf(s)]
	switch {
	case b == nil:
		return 0, true
	case b.refs < 0:
		return 0, false
	}
	b.refs++
	return len(b.b), true
}

// Release ends an ownership taken with Retain (a successful one).
func (p *Pool) Release(s []byte) {
	if p == nil || cap(s) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.mu.bufs[endOf(s)]
	if b == nil || b.refs <= 0 {
		return // not managed (or dropped to the garbage collector), or a caller's bug
	}
	b.refs--
	if b.refs == 0 && b.done {
		p.retireLocked(b)
	}
}

// Done tells the pool that the command that read into s (from Get) has
// ended, under the Guard it ran with still pinned.
func (p *Pool) Done(s []byte) {
	if p == nil || cap(s) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.mu.bufs[endOf(s)]
	if b == nil || b.done {
		return
	}
	b.done = true
	if b.refs == 0 {
		p.retireLocked(b)
	}
}

// retireLocked moves b, which nothing owns any more, to limbo, stamped
// with a new epoch: it becomes free once no Guard pinned before now is
// still pinned.
func (p *Pool) retireLocked(b *buffer) {
	p.retired.Add(1)
	b.refs = -1
	b.epoch = p.epoch.Add(1)
	p.mu.limbo = append(p.mu.limbo, b)
	p.mu.limboBytes += int64(len(b.b))
	p.trimLocked()
}

// reclaimLocked frees the retired buffers that no pinned Guard can still
// read.
func (p *Pool) reclaimLocked() {
	safe := p.minPinned()
	n := 0
	for _, b := range p.mu.limbo {
		if b.epoch > safe {
			break
		}
		n++
		p.mu.limboBytes -= int64(len(b.b))
		if p.opts.Poison {
			for i := range b.b {
				b.b[i] = PoisonByte
			}
		}
		p.mu.free[len(b.b)] = append(p.mu.free[len(b.b)], b)
		p.mu.freeBytes += int64(len(b.b))
	}
	clear(p.mu.limbo[:n])
	p.mu.limbo = p.mu.limbo[n:]
	if len(p.mu.limbo) == 0 {
		p.mu.limbo = nil
	}
}

func (p *Pool) popFreeLocked(size int) *buffer {
	list := p.mu.free[size]
	if len(list) == 0 {
		return nil
	}
	b := list[len(list)-1] // the most recently used: warm in the CPU's caches
	list[len(list)-1] = nil
	p.mu.free[size] = list[:len(list)-1]
	p.mu.freeBytes -= int64(size)
	return b
}

// trimLocked leaves buffers to the garbage collector while the pool holds
// more than MaxBytes: the oldest free buffers of the size with the most
// free bytes first, then the oldest retired ones.
func (p *Pool) trimLocked() {
	for p.mu.freeBytes+p.mu.limboBytes > p.opts.MaxBytes {
		var b *buffer
		if p.mu.freeBytes > 0 {
			best, bestBytes := 0, 0
			for size, list := range p.mu.free {
				if n := size * len(list); n > bestBytes {
					best, bestBytes = size, n
				}
			}
			list := p.mu.free[best]
			b = list[0]
			list[0] = nil
			if len(list) == 1 {
				delete(p.mu.free, best)
			} else {
				p.mu.free[best] = list[1:]
			}
			p.mu.freeBytes -= int64(best)
		} else {
			b = p.mu.limbo[0]
			p.mu.limbo[0] = nil
			p.mu.limbo = p.mu.limbo[1:]
			p.mu.limboBytes -= int64(len(b.b))
		}
		delete(p.mu.bufs, b.end)
		p.dropped.Add(1)
	}
}

// Stats are a Pool's counters.
type Stats struct {
	Gets    uint64 // buffers handed out by Get
	Reused  uint64 // of which recycled
	Retired uint64 // buffers whose last owner let go
	Dropped uint64 // buffers left to the garbage collector (the pool was full)
	Bytes   int64  // memory held in retired and free buffers
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	if p == nil {
		return Stats{}
	}
	p.mu.Lock()
	bytes := p.mu.freeBytes + p.mu.limboBytes
	p.mu.Unlock()
	return Stats{Gets: p.gets.Load(), Reused: p.reused.Load(), Retired: p.retired.Load(), Dropped: p.dropped.Load(), Bytes: bytes}
}

// MaxBytes returns the most memory the pool keeps (Options.MaxBytes); 0
// for a nil pool.
func (p *Pool) MaxBytes() int64 {
	if p == nil {
		return 0
	}
	return p.opts.MaxBytes
}

// Guard is one reader's pin: a connection pins it before it runs commands
// and unpins it once their replies are written, and no buffer retired
// while it is pinned is reused until then. A nil *Guard does nothing.
type Guard struct {
	p      *Pool
	pinned atomic.Uint64 // the epoch it was pinned at; 0 while unpinned
	_      [48]byte      // one cache line per guard: each is written by its own reader
}

// Guard registers a new Guard with the pool; Close it when its reader ends.
func (p *Pool) Guard() *Guard {
	if p == nil {
		return nil
	}
	g := &Guard{p: p}
	p.guards.Lock()
	p.guards.list = append(p.guards.list, g)
	p.guards.Unlock()
	return g
}

// Pin pins g, if it is not pinned, before its reader looks anything up.
func (g *Guard) Pin() {
	if g != nil && g.pinned.Load() == 0 {
		g.pinned.Store(g.p.epoch.Load())
	}
}

// Unpin unpins g once its reader holds no buffer it found.
func (g *Guard) Unpin() {
	if g != nil && g.pinned.Load() != 0 {
		g.pinned.Store(0)
	}
}

// Close unpins g and removes it from its pool.
func (g *Guard) Close() {
	if g == nil {
		return
	}
	g.Unpin()
	p := g.p
	p.guards.Lock()
	defer p.guards.Unlock()
	for i, o := range p.guards.list {
		if o == g {
			last := len(p.guards.list) - 1
			p.guards.list[i] = p.guards.list[last]
			p.guards.list[last] = nil
			p.guards.list = p.guards.list[:last]
			return
		}
	}
}

// minPinned returns the earliest epoch a guard is pinned at, or the
// largest epoch when none is pinned.
func (p *Pool) minPinned() uint64 {
	m := uint64(math.MaxUint64)
	p.guards.Lock()
	for _, g := range p.guards.list {
		if e := g.pinned.Load(); e != 0 && e < m {
			m = e
		}
	}
	p.guards.Unlock()
	return m
}

// Holder is a cache that keeps records in the pool's buffers (memtier.Cache
// keeps its large records there) and so takes part in the protocol above:
// it Retains a buffer while it stores its record and Releases it when the
// record is dropped. A cache composed of a Holder must use the Holder's
// pool for its own shares (tier.Options.Buffers), or a buffer could be
// reused while one of them still counts on it.
type Holder interface {
	Buffers() *Pool
}
