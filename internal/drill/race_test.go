//go:build race

package drill

// raceEnabled builds the daemon and tierctl under test with -race too, so
// that the drills check them for data races.
const raceEnabled = true
