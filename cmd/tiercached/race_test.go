//go:build race

package main

// raceEnabled builds the daemon under test with -race too, so that the
// process tests check it for data races.
const raceEnabled = true
