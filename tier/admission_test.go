package tier_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/tiercache/tiercache/policy"
	"github.com/tiercache/tiercache/tier"
)

// admissionRun is a write-back Hybrid (8 MiB L1, 32 MiB L2) under eviction
// policy p, through the steps of TestAdmission.
type admissionRun struct {
	t *testing.T
	h *tier.Hybrid
}

var admissionValue = make([]byte, 200<<10)

func (r admissionRun) set(key string) {
	r.t.Helper()
	mustSetValue(r.t, r.h, key, admissionValue)
}

func (r admissionRun) get(key string) error {
	_, err := getValue(r.h, key)
	return err
}

// write writes n one-time keys named prefix0, prefix1, … (cache-aside: a
// lookup that misses, then the SET), flushing L2's queue at the end.
func (r admissionRun) write(prefix string, n int) {
	r.t.Helper()
	for i := range n {
		k := fmt.Sprintf("%s%d", prefix, i)
		if err := r.get(k); !errors.Is(err, tier.ErrNotFound) {
			r.t.Fatalf("%s before its SET: %v", k, err)
		}
		r.set(k)
	}
	if err := r.h.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// TestAdmission: under S3-FIFO, once L2 is full, a scan of one-time keys
// is not written to L2 (one-hit wonders, rejected) and evicts none of a
// hot set read before it, in L1 or in L2; under FIFO, the same scan is
// demoted, key after key, and pushes the hot set out of both tiers.
func TestAdmission(t *testing.T) {
	for _, tc := range []struct {
		p        policy.Eviction
		hotKept  bool
		rejected bool
	}{{policy.S3FIFO, true, true}, {policy.FIFO, false, false}} {
		t.Run(tc.p.String(), func(t *testing.T) {
			r := admissionRun{t, openHybrid(t, hcfg{memMax: 8 << 20, diskMax: 32 << 20, policy: tier.WriteBack, eviction: tc.p})}
			defer r.h.Close()
			// L2 full of one-time keys, written while it had room: it
			// has evicted, or turned the last ones away (S3-FIFO).
			r.write("junk", 250)
			if st := r.h.Stats(); st.L2.Evictions == 0 && st.L2.Rejected == 0 {
				t.Fatalf("L2 is not full after 50 MB of writes: %+v", st.L2)
			}
			// A hot set larger than L1, read as it is written and again.
			const hot = 80
			for i := range hot {
				k := fmt.Sprintf("hot%d", i)
				r.set(k)
				if err := r.get(k); err != nil {
					t.Fatal(err)
				}
			}
			for i := range hot {
				if err := r.get(fmt.Sprintf("hot%d", i)); err != nil {
					t.Fatalf("hot%d before the scan: %v", i, err)
				}
			}
			if err := r.h.Flush(); err != nil {
				t.Fatal(err)
			}
			before := r.h.Stats()
			r.write("scan", 400) // 80 MB: L2 more than twice over
			after := r.h.Stats()
			lost := 0
			for i := range hot {
				if err := r.get(fmt.Sprintf("hot%d", i)); err != nil {
					lost++
				}
			}
			demoted, rejected := after.Demotions-before.Demotions, after.L2.Rejected-before.L2.Rejected
			t.Logf("%s: the scan's evictions: %d demoted to L2, %d not written (one-hit wonders); hot keys lost: %d of %d; L2 written %d MB",
				tc.p, demoted, rejected, lost, hot, (after.L2.Written-before.L2.Written)>>20)
			if tc.hotKept && lost != 0 {
				t.Errorf("the scan evicted %d of %d hot keys", lost, hot)
			}
			if !tc.hotKept && lost == 0 {
				t.Errorf("under %s the scan evicted no hot key: the test does not tell policies apart", tc.p)
			}
			// The scan's first evictions may come from main (hot keys,
			// demoted as they should be) until the small queue holds its
			// tenth of L1: four entries of 200 KiB.
			if tc.rejected && (rejected < 300 || demoted > 4) {
				t.Errorf("one-hit wonders: %d demoted, %d rejected; want at most the 4 of main while the small queue fills", demoted, rejected)
			}
			if !tc.rejected && (rejected != 0 || demoted < 300) {
				t.Errorf("under %s: %d demoted, %d rejected; want every eviction demoted", tc.p, demoted, rejected)
			}
			if st := r.h.Stats(); tc.rejected && (st.L1.Rejected == 0 || st.L1.Admitted < hot) {
				t.Errorf("L1 admitted %d, rejected %d", st.L1.Admitted, st.L1.Rejected)
			}
		})
	}
}

// TestAdmissionWriteThrough: in write-through mode every SET reaches L2,
// one-time keys included, whatever L1's policy lets go.
func TestAdmissionWriteThrough(t *testing.T) {
	r := admissionRun{t, openHybrid(t, hcfg{memMax: 8 << 20, diskMax: 64 << 20})}
	defer r.h.Close()
	r.write("once", 100) // 20 MB: L1 2.5 times over, within L2
	if st := r.h.Stats(); st.L1.Rejected == 0 || st.L2.Keys != 100 {
		t.Fatalf("L1 rejected %d; L2 holds %d keys, want all 100", st.L1.Rejected, st.L2.Keys)
	}
	for i := range 100 {
		if err := r.get(fmt.Sprintf("once%d", i)); err != nil {
			t.Fatalf("once%d: %v", i, err)
		}
	}
}

// TestAdmissionOverwrite: in write-back mode with L2 full, an overwrite
// that S3-FIFO then lets go unread is not written to L2, and L2's older
// value of the key must not come back: the eviction deletes it.
func TestAdmissionOverwrite(t *testing.T) {
	r := admissionRun{t, openHybrid(t, hcfg{memMax: 8 << 20, diskMax: 32 << 20, policy: tier.WriteBack})}
	defer r.h.Close()
	r.write("junk", 250)
	old, fresh := bytes.Repeat([]byte{'0'}, 200<<10), bytes.Repeat([]byte{'1'}, 200<<10)
	mustSetValue(t, r.h, "victim", old)
	if err := r.get("victim"); err != nil { // read while new: on to main
		t.Fatal(err)
	}
	for i := range 80 { // main evicts it: demoted to L2
		k := fmt.Sprintf("hot%d", i)
		r.set(k)
		if err := r.get(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.h.Flush(); err != nil {
		t.Fatal(err)
	}
	mustSetValue(t, r.h, "victim", fresh) // not read: S3-FIFO lets it go
	r.write("scan", 100)
	if st := r.h.Stats(); st.L2.Rejected == 0 {
		t.Fatalf("nothing rejected: the test does not reach the case (%+v)", st.L2)
	}
	if v, err := getValue(r.h, "victim"); err == nil && !bytes.Equal(v, fresh) {
		t.Fatal("the value overwritten in L1 came back from L2")
	}
}
