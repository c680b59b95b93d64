package main

import "math/bits"

// The daemon's accounting, copied from the packages it models so that
// the today model holds what tiercached holds. Constants are checked
// against those packages' sources, not imported: they are unexported.
const (
	// keyLen is the harness's key, "{clip@v1}p123456".
	keyLen = 16
	// l2KeyLen is its L2 key: the model prefix and epoch in front
	// (tier.ModelKey).
	l2KeyLen = 1 + 1 + 4 + 8 + keyLen
	// recordOverhead is tier.HeaderSize and the version tag "v1".
	recordOverhead = 32 + 2
	// valueHeadroom is tier.ValueHeadroom: the room the server reads a
	// value's buffer with.
	valueHeadroom = 256
	// largeEntryCost is memtier's entryCost.
	largeEntryCost = 128
	// pageSize is the Go allocator's page.
	pageSize = 8 << 10
)

// l1Cost is what memtier's large store charges for a record of a value of
// size bytes read by the server into a pooled buffer (bufpool's size
// class, at least the allocation the record would take on its own), with
// its key and entry: 122,880 + 144 bytes for 118 KB, 4.5 MiB for 4 MiB.
func l1Cost(size int64) int64 {
	rec := size + recordOverhead
	alloc := (rec + valueHeadroom + pageSize - 1) / pageSize * pageSize
	return max(alloc, bufSizeClass(size+valueHeadroom)) + keyLen + largeEntryCost
}

// bufSizeClass is bufpool's sizeClass.
func bufSizeClass(n int64) int64 {
	if n <= 4096 {
		return 4096
	}
	step := int64(1) << (bits.Len64(uint64(n-1)) - 4)
	return (n + step - 1) &^ (step - 1)
}

// l1Limit is memtier's budget for large records when no small record was
// ever written (the rings take nothing): MaxBytes rounded down to MiB.
func l1Limit(memMax int64) int64 { return memMax / MiB * MiB }

// l1MaxRecord is memtier's default MaxRecord: (MaxBytes - SmallBytes)/10,
// SmallBytes being MaxBytes/8. Larger records are kept in L2 only.
func l1MaxRecord(memMax int64) int64 {
	c := l1Limit(memMax)
	return (c - c/8/MiB*MiB) / 10
}

// l2Cost is disktier's entryCost for a record apart from its pointer.
func l2Cost(size int64) int64 {
	return size + recordOverhead + 3*l2KeyLen + 3*9 + 25 + 3*16
}

// l2Budget is disktier's logical budget for --disk-max diskMax: MaxBytes
// less a memtable (MaxBytes/32, 1 to 64 MiB) and a generation (a 33rd of
// the rest) (store.go, sizing).
func l2Budget(diskMax int64) int64 {
	memTable := max(1*MiB, min(64*MiB, diskMax/32))
	return diskMax - memTable - (diskMax-memTable)/33
}
