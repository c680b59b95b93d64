package peer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func members(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("node-%d", i), Addr: fmt.Sprintf("10.0.0.%d:7000", i)}
	}
	return ms
}

func owners(r *Ring, keys int) []string {
	out := make([]string, keys)
	for i := range out {
		m, _ := r.Owner(fmt.Appendf(nil, "{clip@v1}prompt:%d", i))
		out[i] = m.ID
	}
	return out
}

// Each member owns 1/N of the keys, within 5% of its share.
func TestRingSpread(t *testing.T) {
	const keys = 200_000
	for _, n := range []int{2, 3, 5, 8, 16} {
		counts := map[string]int{}
		for _, id := range owners(NewRing(members(n)), keys) {
			counts[id]++
		}
		if len(counts) != n {
			t.Fatalf("%d members: %d own keys", n, len(counts))
		}
		want := float64(keys) / float64(n)
		for id, c := range counts {
			if dev := math.Abs(float64(c)-want) / want; dev > 0.05 {
				t.Errorf("%d members: %s owns %d keys, %.1f%% off its share %.0f", n, id, c, 100*dev, want)
			}
		}
	}
}

// A member joining takes about 1/(N+1) of the keys, all from the others
// and all to itself; a member leaving gives away its own keys and no
// other moves.
func TestRingJoinLeave(t *testing.T) {
	const keys = 100_000
	for _, n := range []int{2, 3, 5, 8} {
		r := NewRing(members(n))
		before := owners(r, keys)
		r.Update(members(n + 1))
		after := owners(r, keys)
		joined := members(n + 1)[n].ID
		moved := 0
		for i := range before {
			if before[i] != after[i] {
				moved++
				if after[i] != joined {
					t.Fatalf("%d+1 members: key %d moved from %s to %s, not to the joining member", n, i, before[i], after[i])
				}
			}
		}
		frac, want := float64(moved)/keys, 1/float64(n+1)
		t.Logf("%d -> %d members: %.2f%% of keys moved (1/N = %.2f%%)", n, n+1, 100*frac, 100*want)
		if math.Abs(frac-want) > 0.01 {
			t.Errorf("%d -> %d members: %.2f%% of keys moved, want %.2f%% ± 1", n, n+1, 100*frac, 100*want)
		}

		// The member that leaves is one in the middle, not the last added.
		left := members(n + 1)
		gone := left[1].ID
		left = append(left[:1], left[2:]...)
		r.Update(left)
		final := owners(r, keys)
		moved = 0
		for i := range after {
			if after[i] != final[i] {
				moved++
				if after[i] != gone {
					t.Fatalf("%d+1 -> %d members: key %d moved from %s, which stayed", n, n, i, after[i])
				}
			}
		}
		frac, want = float64(moved)/keys, 1/float64(n+1)
		if math.Abs(frac-want) > 0.01 {
			t.Errorf("%d+1 -> %d members: %.2f%% of keys moved, want %.2f%% ± 1", n, n, 100*frac, 100*want)
		}
	}
}

// Owners depend on the member ids and the key only: these were computed
// once and must hold in every process, on every platform, in every later
// version (daemons of mixed versions share a fleet during an upgrade).
func TestRingDeterministic(t *testing.T) {
	ms := []Member{{"alpha", "a:1"}, {"bravo", "b:1"}, {"charlie", "c:1"}, {"delta", "d:1"}, {"echo", "e:1"}}
	golden := [][2]string{
		{"", "echo"},
		{"a", "charlie"},
		{"{clip@v1}prompt:a cat", "delta"},
		{"{openai/clip-vit-large-patch14}x", "echo"},
		{"key:1", "alpha"},
		{"key:2", "charlie"},
		{"key:3", "bravo"},
		{"key:4", "alpha"},
		{"key:5", "alpha"},
		{"key:6", "echo"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		shuffled := append([]Member(nil), ms...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if round%2 == 1 {
			// Another address for the same node moves none of its keys.
			shuffled[0].Addr = "elsewhere:2"
		}
		r := NewRing(shuffled)
		for _, g := range golden {
			if m, ok := r.Owner([]byte(g[0])); !ok || m.ID != g[1] {
				t.Fatalf("members %v: owner of %q is %q, want %q", shuffled, g[0], m.ID, g[1])
			}
		}
	}
}

func TestRingUpdate(t *testing.T) {
	r := NewRing(nil)
	if _, ok := r.Owner([]byte("k")); ok {
		t.Fatal("an empty ring has an owner")
	}
	ch := r.Changed()
	r.Update([]Member{{ID: "b", Addr: "b:1"}, {ID: "a", Addr: "a:1"}, {ID: "c"}, {Addr: "x:1"}, {ID: "b", Addr: "b:2"}})
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by Update")
	}
	got := r.Members()
	want := []Member{{ID: "a", Addr: "a:1"}, {ID: "b", Addr: "b:2"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Members() = %v, want %v (without an id or an address a member owns nothing; the later of two entries wins)", got, want)
	}
	if m, ok := r.Member("b"); !ok || m.Addr != "b:2" {
		t.Fatalf("Member(b) = %v, %v", m, ok)
	}
	for i := range 100 {
		if m, _ := r.Owner(fmt.Appendf(nil, "k%d", i)); m.ID == "c" || m.ID == "" {
			t.Fatalf("key k%d owned by %q", i, m.ID)
		}
	}
	select {
	case <-r.Changed():
		t.Fatal("the new state's Changed is already closed")
	default:
	}
}
