// Package testutil is what tiercache's tests share: one way to poll for a
// condition and one way to run a program, modelled on nats-server's
// checkFor and RunServer.
//
// # Polling
//
// CheckFor calls a function until it returns nil, and fails the test with
// its last error when the time given has passed; WaitFor is the same for a
// condition that has no error to tell. The pause between calls grows from
// 1 ms to 20 ms: it is the interval between checks, not a wait for an
// event, so tests never sleep for a fixed time to let something happen.
//
// # Programs
//
// Main is the TestMain of packages that run programs: it builds them once
// (Build), with -race when the test binary has it, and checks for leaked
// goroutines after the tests. StartProcess starts a program and returns a
// Process, whose output the test reads while it runs, and which the test's
// cleanup kills if it still runs; RunProcess runs one to its end. Programs
// run with the test's environment less the TIERCACHE_* variables and
// GOMEMLIMIT (Env), so that the settings of the shell running the tests do
// not leak into them.
//
// In-process NATS servers are package natstest's.
//
// # Tools
//
// Some tests check tiercache against a tool that .ci/run installs: a real
// redis-server as the reference for replies, redis-cli, redis-benchmark,
// redis-py, Redis' own test suite, the NATS CLI, promtool. NeedTool looks
// a program up and ToolMissing ends a test whose tool is absent: it skips
// the test, so that go test ./... passes with only Go, except under CI
// (the environment variable CI=true, UnderCI), where it fails the test
// naming the tool, so that a CI run cannot pass without those checks.
//
// # Caveats
//
// The package is imported by tests only. Process.LogLine reads the JSON
// lines a daemon started with --log-format json writes to its standard
// error.
package testutil
