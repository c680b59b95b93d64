// Package testutil holds what tiercache's tests share: polling for a
// condition, a log buffer safe for a process and a test at once, and
// building the commands that process tests run.
//
// It is imported by tests only.
package testutil
