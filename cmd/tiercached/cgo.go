//go:build cgo

package main

// cgoEnabled reports whether the program is built with cgo, with which
// Pebble allocates its block cache and memtables outside the Go heap.
const cgoEnabled = true
