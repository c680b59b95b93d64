// Package zipf draws the Zipf-distributed key ranks of the benchmark
// traces: the harness's budget workload and the policy simulator
// (bench/policysim) share it, so that both replay the same prompts.
//
// # Basics
//
// New tabulates the cumulative distribution of P(k) ∝ 1/(k+1)^s over ranks
// 0 … n-1; Draw inverts it with one uniform variate. Unlike math/rand's
// Zipf it accepts any s > 0, s = 1 included. Trace draws a whole sequence
// from a PCG stream, so a (seed, stream) pair names one trace.
//
// # Caveats
//
//   - The output is part of the benchmarks' results: changing how a rank
//     is drawn changes every published hit ratio. Keep it bit for bit.
//   - New costs O(n) time and 8n bytes (the table); Draw O(log n).
package zipf
