package zipf

import (
	"math/rand/v2"
	"testing"
)

func TestZipf(t *testing.T) {
	z := New(1000, 1.0)
	rng := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, 1000)
	const n = 200_000
	for range n {
		counts[z.Draw(rng)]++
	}
	// P(rank 0) = 1/H(1000) ≈ 0.1336; rank 1 half of that.
	if p := float64(counts[0]) / n; p < 0.125 || p > 0.142 {
		t.Errorf("P(0) = %.4f, want ≈ 0.1336", p)
	}
	if r := float64(counts[0]) / float64(counts[1]); r < 1.8 || r > 2.2 {
		t.Errorf("P(0)/P(1) = %.2f, want ≈ 2", r)
	}
}
