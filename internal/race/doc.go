// Package race reports whether the program was built with the race
// detector (go build -race, go test -race).
//
// Tests use it in two ways: to build the programs they run with -race too
// (testutil.Command.Race), so that those are checked for data races as
// well, and to skip or scale down what the detector makes too slow, or to
// leave out memory bounds its shadow memory (several times the RSS) would
// break.
//
// Enabled is a constant, set by the build tag race, so code under
// "if race.Enabled" is compiled out of the builds without it.
package race
