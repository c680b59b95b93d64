package zipf

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf draws ranks 0 … n-1 with P(k) ∝ 1/(k+1)^s by inverting the
// cumulative distribution.
type Zipf struct{ cdf []float64 }

// New returns the distribution over n ranks with exponent s.
func New(n int, s float64) *Zipf {
	cdf := make([]float64, n)
	var sum float64
	for k := range n {
		sum += math.Pow(float64(k+1), -s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return &Zipf{cdf: cdf}
}

// Draw returns one rank, using one variate of rng.
func (z *Zipf) Draw(rng *rand.Rand) int {
	return min(sort.SearchFloat64s(z.cdf, rng.Float64()), len(z.cdf)-1)
}

// Trace returns count ranks drawn from z with the PCG generator of seed
// and stream.
func (z *Zipf) Trace(count int, seed, stream uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, stream))
	t := make([]int32, count)
	for i := range t {
		t[i] = int32(z.Draw(rng))
	}
	return t
}
