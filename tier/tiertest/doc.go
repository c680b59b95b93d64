// Package tiertest is the conformance suite every tier.Tier passes: L1
// (memtier), L2 (disktier) and their composition (tier.Hybrid) run the same
// cases, so a behaviour that differs between levels is a bug in one of them.
package tiertest
