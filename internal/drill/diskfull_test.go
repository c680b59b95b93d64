package drill

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Drill 2: the disk fills up under the daemon.
//
// The data directory is on a 64 MiB tmpfs mounted for the test (it needs
// root; the drill skips otherwise — tier/fault_test.go covers the same
// faults in-process with Pebble's errorfs) and --disk-max is four times
// larger, so the daemon's own bound does not save it. Once entries are on
// disk, a filler file takes the rest of the filesystem; SETs keep being
// acknowledged and served from memory while L2 writes fail and are
// reported (INFO l2_write_errors, l2_errors); deleting the filler gives the
// space back and the daemon writes its queue down by itself (INFO
// pending_write_bytes drops to 0) with no restart. A SIGKILL and restart
// then show every entry written before, during (unless INFO
// pending_writes_dropped says the queue shed some) and after the fault.

const diskValueSize = 64 << 10

func TestDrillDiskFull(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fs, diskMax string
	}{
		// --disk-max below the filesystem's size: the filler fills it.
		{name: "fs=128MiB,disk-max=100MiB", fs: "128m", diskMax: "100MiB"},
		// --disk-max four times the filesystem: the daemon lowers it to
		// 90% of the filesystem (INFO l2_max_bytes). Before that, and
		// before Pebble's WAL preallocation was capped (see the package
		// documentation, "Findings", walprealloc), the daemon filled the
		// filesystem by itself and could not flush again.
		{name: "fs=64MiB,disk-max=256MiB", fs: "64m", diskMax: "256MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diskFull(t, tc.fs, tc.diskMax)
		})
	}
}

func diskFull(t *testing.T, fsSize, diskMax string) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+fsSize); err != nil {
		t.Skipf("cannot mount a tmpfs at %s (%v): this drill needs root (CAP_SYS_ADMIN); tier/fault_test.go covers full-disk errors in-process with errorfs", mnt, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the filesystem when the drill failed:\n%s", listDir(mnt))
		}
	})
	d := newDaemon(t, "disk", "", "--nats", "off", "--write-policy", "through", "--flush-interval", "200ms",
		"--mem-max", "64MiB", "--disk-max", diskMax, "--max-value", "1MiB")
	d.dataDir = filepath.Join(mnt, "data")
	d.start()
	c := d.client(2)
	ctx := context.Background()
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	l2Max := d.infoInt("l2_max_bytes")
	if fsBytes := int64(sfs.Blocks) * sfs.Bsize; l2Max > fsBytes*9/10 {
		t.Fatalf("l2_max_bytes %d on a filesystem of %d bytes: --disk-max was not lowered to 90%% of it", l2Max, fsBytes)
	}

	// "during" is more than the write queue holds (a quarter of --mem-max)
	// and more than a memtable, so that L2 writes fail.
	const nBefore, nDuring, nAfter = 160, 400, 100 // 10, 25 and 6.25 MiB
	set := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			k := fmt.Sprintf("%s:%d", prefix, i)
			if err := c.Set(ctx, k, NewValue([]byte(k), 1, diskValueSize), 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
		}
	}
	// get checks that every key of prefix is served intact, and returns how
	// many were missing (allowed only where noted).
	get := func(c *redis.Client, prefix string, n int) (missing int) {
		t.Helper()
		for i := range n {
			k := fmt.Sprintf("%s:%d", prefix, i)
			v, err := c.Get(ctx, k).Bytes()
			if errors.Is(err, redis.Nil) {
				missing++
				continue
			}
			if err != nil {
				t.Fatalf("GET %s: %v", k, err)
			}
			if _, err := CheckValue([]byte(k), v); err != nil {
				t.Fatalf("GET %s: %v", k, err)
			}
		}
		return missing
	}
	waitFlushed := func(what string, timeout time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		waitFor(t, timeout, what, func() bool {
			d.checkAlive()
			return d.infoInt("pending_write_bytes") == 0
		})
		return time.Since(start)
	}

	set("before", nBefore)
	waitFlushed("the first entries to reach the disk", 30*time.Second)
	if m := get(c, "before", nBefore); m != 0 {
		t.Fatalf("%d entries missing before any fault", m)
	}

	// A checker reads every key written so far, continuously, from here on.
	var written atomic.Int64 // "during" keys acknowledged
	var checked atomic.Int64
	var paused sync.RWMutex // held to pause the checker
	cctx, stopChecker := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var checkErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		cc := d.client(1)
		defer cc.Close()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
		for cctx.Err() == nil {
			paused.RLock()
			paused.RUnlock()
			k := fmt.Sprintf("before:%d", rng.IntN(nBefore))
			if n := written.Load(); n > 0 && rng.IntN(2) == 0 {
				k = fmt.Sprintf("during:%d", rng.Int64N(n))
			}
			v, err := cc.Get(cctx, k).Bytes()
			if err == nil {
				_, err = CheckValue([]byte(k), v)
			}
			if err != nil && cctx.Err() == nil {
				checkErr = fmt.Errorf("checker: GET %s: %w", k, err) // a miss too: nothing may be lost while the disk is full
				return
			}
			checked.Add(1)
		}
	}()
	defer func() { stopChecker(); wg.Wait() }()

	filler := filepath.Join(mnt, "filler")
	fillBytes := fill(t, filler)

	for i := range nDuring {
		k := fmt.Sprintf("during:%d", i)
		if err := c.Set(ctx, k, NewValue([]byte(k), 1, diskValueSize), 0).Err(); err != nil {
			t.Fatalf("SET %s with the disk full: %v", k, err)
		}
		written.Add(1)
	}
	waitFor(t, 60*time.Second, "the L2 write errors to be reported", func() bool {
		d.checkAlive()
		return d.infoInt("l2_write_errors") > 0 || d.infoInt("l2_errors") > 0
	})
	if m := get(c, "during", nDuring); m != 0 {
		t.Fatalf("%d entries written while the disk is full are not served from memory", m)
	}
	if m := get(c, "before", nBefore); m != 0 {
		t.Fatalf("%d entries written before the disk filled are not served", m)
	}
	full := d.info()
	// The daemon's CPU while the disk stays full and no request comes in:
	// what its retries of L2 cost the host.
	paused.Lock()
	cpu0, wall0 := procCPU(d.pid()), time.Now()
	time.Sleep(3 * time.Second) // a measurement window, not a wait for an event
	fullCPU := float64(procCPU(d.pid())-cpu0) / float64(time.Since(wall0))
	paused.Unlock()

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	recovered := waitFlushed("the queued writes to reach the disk once space returned", time.Minute)
	set("after", nAfter)
	waitFlushed("the writes after the fault to reach the disk", time.Minute)
	stopChecker()
	wg.Wait()
	if checkErr != nil {
		t.Fatal(checkErr)
	}
	st := d.info()
	d.kill()

	d.start()
	c2 := d.client(1)
	if m := get(c2, "before", nBefore); m != 0 {
		t.Errorf("after the restart, %d of %d entries that were on disk before it filled are gone", m, nBefore)
	}
	if m := get(c2, "after", nAfter); m != 0 {
		t.Errorf("after the restart, %d of %d entries written once space returned are gone", m, nAfter)
	}
	lostDuring := get(c2, "during", nDuring)
	if lostDuring != 0 && st["pending_writes_dropped"] == "0" {
		t.Errorf("after the restart, %d of %d entries written while the disk was full are gone, and none was reported dropped", lostDuring, nDuring)
	}
	if n := d.infoInt("l2_corrupt_entries"); n != 0 {
		t.Errorf("l2_corrupt_entries %d after the restart", n)
	}
	d.stop()
	t.Logf("disk-full drill (%s tmpfs, --disk-max %s, l2_max_bytes %s): a %s filler filled the disk after %d entries (%s); %d SETs acknowledged and served while full (l2_write_errors %s, l2_errors %s, pending %s bytes; idle daemon's CPU while full %.0f%% of a core); writes back on disk %v after space returned, by itself; after SIGKILL+restart: %d/%d before, %d/%d during (dropped %s), %d/%d after present; %d values checked continuously, 0 corrupt",
		fsSize, diskMax, mib(l2Max), mib(fillBytes), nBefore, mib(nBefore*diskValueSize), nDuring, full["l2_write_errors"], full["l2_errors"], full["pending_write_bytes"], 100*fullCPU,
		recovered.Round(time.Millisecond), nBefore, nBefore, nDuring-lostDuring, nDuring, st["pending_writes_dropped"], nAfter, nAfter, checked.Load())
}

// fill writes path until the filesystem is full and returns its size.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("filling %s: %v", path, err)
			}
		}
	}
	return n
}

// listDir lists the files under dir with their sizes and the space
// allocated to them (preallocated extents past the end of a file count
// there, not in its size), and the space left.
func listDir(dir string) string {
	var b strings.Builder
	var size, alloc int64
	fmt.Fprintf(&b, "%12s %12s\n", "size", "allocated")
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(path, &st) == nil {
			size += st.Size
			alloc += st.Blocks * 512
			fmt.Fprintf(&b, "%12d %12d %s\n", st.Size, st.Blocks*512, path)
		}
		return nil
	})
	var st syscall.Statfs_t
	_ = syscall.Statfs(dir, &st)
	fmt.Fprintf(&b, "%12d %12d in all; %d bytes free", size, alloc, st.Bavail*uint64(st.Bsize))
	return b.String()
}
