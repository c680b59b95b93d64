package tier_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tiercache/tiercache/tier"
	"github.com/tiercache/tiercache/tier/tiertest"
)

const (
	crashChildEnv = "TIERCACHE_TEST_CRASH_CHILD_DIR"
	crashFlush    = 200 * time.Millisecond
)

func crashKey(i int) string { return "crash:" + strconv.Itoa(i) }
func crashSize(i int) int   { return 1000 + (i*7919)%(160<<10) }

// crashChild is the body of the child process TestCrashDurability kills: it
// writes through a Hybrid as fast as it can and reports every acknowledged
// write on stdout with the time it was acknowledged.
func crashChild() {
	dir := os.Getenv(crashChildEnv)
	start, _ := strconv.Atoi(os.Getenv(crashChildEnv + "_START"))
	h := openHybrid(&testing.B{}, hcfg{dir: dir, memMax: 16 << 20, flush: crashFlush})
	out := bufio.NewWriterSize(os.Stdout, 64)
	for i := start; ; i++ {
		k := crashKey(i)
		if err := h.SetValue([]byte(k), tiertest.Value([]byte(k), crashSize(i), uint64(i)), 0); err != nil {
			fmt.Fprintln(os.Stderr, "set:", err)
			os.Exit(3)
		}
		fmt.Fprintf(out, "%d %d\n", i, time.Now().UnixNano())
		out.Flush()
	}
}

// TestCrashDurability kills a writing child with SIGKILL and checks that
// every write it acknowledged more than FlushInterval before the kill is in
// L2 after reopening, and that nothing corrupt is served.
func TestCrashDurability(t *testing.T) {
	dir := t.TempDir()
	const cycles = 3
	durable := map[int]bool{} // keys found after an earlier kill: they must stay
	next := 0
	for c := range cycles {
		acks := runCrashChild(t, dir, next, 400*time.Millisecond+time.Duration(c)*150*time.Millisecond)
		kill := acks.killedAt
		h := openHybrid(t, hcfg{dir: dir, memMax: 16 << 20, flush: crashFlush})
		required, present := 0, 0
		for i := 0; i <= acks.last; i++ {
			k := crashKey(i)
			ackedAt, acked := acks.at[i]
			mustBeThere := durable[i] || (acked && ackedAt.Before(kill.Add(-crashFlush)))
			if mustBeThere {
				required++
			}
			got, err := getValue(h, k)
			if err != nil {
				if mustBeThere {
					t.Fatalf("cycle %d: %s (acknowledged %v before the kill) is missing: %v", c, k, kill.Sub(ackedAt), err)
				}
				continue
			}
			present++
			durable[i] = true
			if !bytes.Equal(got, tiertest.Value([]byte(k), crashSize(i), uint64(i))) {
				t.Fatalf("cycle %d: %s: corrupt value served", c, k)
			}
		}
		st := h.Stats()
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("cycle %d: %d writes acknowledged, %d required after the kill, %d present, L2 corrupt %d",
			c, acks.last+1-next, required, present, st.L2.Corrupt)
		next = acks.last + 1
	}
}

type ackLog struct {
	at       map[int]time.Time
	last     int
	killedAt time.Time
}

func runCrashChild(t *testing.T, dir string, start int, runFor time.Duration) ackLog {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildEnv+"_START="+strconv.Itoa(start))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := ackLog{at: map[int]time.Time{}, last: start - 1}
	sc := bufio.NewScanner(stdout)
	var deadline time.Time
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		i, _ := strconv.Atoi(f[0])
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		log.at[i], log.last = time.Unix(0, ns), i
		if deadline.IsZero() {
			deadline = time.Now().Add(runFor) // count from the first write, after start-up
		}
		if time.Now().After(deadline) {
			break
		}
	}
	log.killedAt = time.Now()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if log.last < start {
		t.Fatalf("child wrote nothing; stderr: %s", stderr.String())
	}
	return log
}

var _ tier.Tier
