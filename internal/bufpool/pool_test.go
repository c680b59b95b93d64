package bufpool

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func same(a, b []byte) bool { return unsafe.SliceData(a) == unsafe.SliceData(b) }

func TestSizeClass(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{1, 4096}, {4096, 4096}, {4097, 4608}, {16 << 10, 16 << 10}, {16<<10 + 1, 18 << 10},
		{120_000 + 256, 122_880}, {4<<20 + 256, 4<<20 + 512<<10}, {1 << 30, 1 << 30},
	} {
		if got := sizeClass(c.n); got != c.want {
			t.Errorf("sizeClass(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	for n := 1; n < 1<<22; n += 997 {
		if s := sizeClass(n); s < n || s > n+n/8+4096 {
			t.Fatalf("sizeClass(%d) = %d: not within 12.5%%", n, s)
		}
	}
}

// A buffer is reused only after its command is done, its owners have let
// go, and every guard pinned before that has been unpinned.
func TestReuseWaitsForOwnersAndGuards(t *testing.T) {
	p := New(Options{})
	g := p.Guard()
	defer g.Close()

	g.Pin()
	a := p.Get(100_000)
	if len(a) != 100_000 || cap(a) != 100_000 {
		t.Fatalf("Get: len %d cap %d", len(a), cap(a))
	}
	rec := a[40:] // a record built in the buffer keeps its end
	if size, ok := p.Retain(rec); !ok || size != sizeClass(100_000) {
		t.Fatalf("Retain = %d, %v", size, ok)
	}
	p.Done(a)
	if b := p.Get(100_000); same(a, b) {
		t.Fatal("reused while owned")
	}
	p.Release(rec) // retired now, but g was pinned before
	if b := p.Get(100_000); same(a, b) {
		t.Fatal("reused while a guard pinned before its retirement is pinned")
	}
	if _, ok := p.Retain(rec); ok {
		t.Fatal("Retain of a retired buffer succeeded")
	}
	g.Unpin()
	g.Pin() // pinned after the retirement: does not hold it
	b := p.Get(99_000)
	if !same(a, b) || len(b) != 99_000 {
		t.Fatalf("not reused for a value of the same size class (len %d)", len(b))
	}
	if s := p.Stats(); s.Reused != 1 || s.Retired != 1 {
		t.Fatalf("stats %+v", s)
	}
	// The reused buffer is managed under its new end.
	if _, ok := p.Retain(b); !ok {
		t.Fatal("Retain of the reissued buffer failed")
	}
	p.Release(b)
	p.Done(b)
}

// Memory the pool does not manage is left alone.
func TestForeignMemory(t *testing.T) {
	p := New(Options{})
	x := make([]byte, 1<<20)
	if size, ok := p.Retain(x); size != 0 || !ok {
		t.Fatalf("Retain(foreign) = %d, %v", size, ok)
	}
	p.Release(x)
	p.Done(x)
	var nilPool *Pool
	if b := nilPool.Get(10); len(b) != 10 {
		t.Fatal("nil pool Get")
	}
	if _, ok := nilPool.Retain(x); !ok {
		t.Fatal("nil pool Retain")
	}
	nilPool.Guard().Pin()
}

// Retired and free buffers never exceed MaxBytes; the excess is dropped.
func TestMaxBytes(t *testing.T) {
	const size = 128 << 10
	p := New(Options{MaxBytes: 4 * size})
	var bufs [][]byte
	for range 10 {
		bufs = append(bufs, p.Get(size))
	}
	for _, b := range bufs {
		p.Done(b)
		if s := p.Stats(); s.Bytes > 4*size {
			t.Fatalf("pool holds %d bytes, max %d", s.Bytes, 4*size)
		}
	}
	if s := p.Stats(); s.Dropped != 6 || s.Bytes != 4*size {
		t.Fatalf("stats %+v", s)
	}
	// A new size pushes the oldest free buffers out.
	for range 4 {
		p.Done(p.Get(3 * size))
	}
	if s := p.Stats(); s.Bytes > 4*size {
		t.Fatalf("pool holds %d bytes, max %d", s.Bytes, 4*size)
	}
}

// Readers under guards, owners retaining and releasing, and writers
// reusing buffers, concurrently: a reader never sees a buffer change while
// it holds it pinned (with Poison, a recycled buffer is overwritten).
func TestConcurrentNoReuseWhilePinned(t *testing.T) {
	p := New(Options{MaxBytes: 8 << 20, Poison: true})
	const slots, size = 16, 40 << 10
	var mu sync.Mutex
	stored := make([][]byte, slots) // "the cache": each slot owns its record
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// guarded runs body under a pinned guard of its own until stop.
	guarded := func(body func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := p.Guard()
			defer g.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				g.Pin()
				body(i)
				g.Unpin()
			}
		}()
	}
	for w := range 4 { // writers: read a value into a pooled buffer and store it
		guarded(func(i int) {
			b := p.Get(size)
			fill := byte(w*64 + i%64)
			for j := range b {
				b[j] = fill
			}
			slot := (w + i) % slots
			mu.Lock()
			if _, ok := p.Retain(b); !ok {
				t.Error("Retain of a fresh buffer failed")
			}
			old := stored[slot]
			stored[slot] = b
			p.Release(old)
			mu.Unlock()
			p.Done(b)
		})
	}
	for range 4 { // readers: find a record, check it stays whole while pinned
		guarded(func(i int) {
			mu.Lock()
			b := stored[i%slots]
			mu.Unlock()
			if b == nil {
				return
			}
			want := bytes.Repeat(b[:1], len(b))
			for range 3 {
				if !bytes.Equal(b, want) {
					t.Error("a pinned reader's buffer changed under it")
					return
				}
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Reused < 2000 && !t.Failed() && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	s := p.Stats()
	t.Logf("stats %+v", s)
	if s.Reused == 0 {
		t.Fatal("nothing was reused")
	}
}

func ExamplePool() {
	p := New(Options{})
	g := p.Guard() // one per connection
	defer g.Close()

	g.Pin()                 // before running commands
	b := p.Get(128 << 10)   // read a value into b
	_, _ = p.Retain(b[32:]) // the cache stores a record built in b
	p.Done(b)               // the command has ended
	g.Unpin()               // its replies are written

	p.Release(b[32:]) // the cache dropped the record: b is retired
	fmt.Println(p.Stats().Retired)
	// Output: 1
}
