//go:build race

package tier_test

// raceEnabled: the race detector's shadow memory multiplies RSS, so memory
// bounds are only asserted without it.
const raceEnabled = true
