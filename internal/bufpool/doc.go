// Package bufpool recycles the buffers large values are read into.
//
// A SET of a 118 KB or 4 MB value reads it into a buffer that then becomes
// the stored record (memtier keeps large records by reference). Without
// recycling, every such SET lands in memory the Go runtime has just
// obtained or must first zero, and most of the daemon's time goes to page
// faults and clearing: 40,000 SETs of 118 KB ran at 9,500/s with 134,000
// page faults, against 17,800/s with 250 when the memory was already
// touched, and a buffer reused by redis-benchmark's SET ran 2–3× faster
// than a fresh one. Redis reuses freed memory at once through its
// allocator; a garbage-collected heap only after a collection, so the
// daemon reuses buffers itself.
//
// # Basics
//
// Get returns a buffer of the asked length, reused or new. A buffer has
// owners — the memory tier while it stores the record, a write waiting for
// the disk tier — that Retain and Release it; the command that read it
// calls Done when it ends. When it has no owner left and its command is
// done, the buffer is retired.
//
// Readers need no reference count: a connection that looks a record up and
// writes it to its client holds a Guard pinned from the start of its
// commands until their replies are flushed. A buffer retired at epoch R is
// reused only once every pinned guard was pinned at R or later, that is,
// once every reader that could have found it has finished (epoch-based
// reclamation). A guard pinned for long (a client that does not read its
// replies) only delays reuse.
//
// # Caveats
//
//   - A buffer is known by the address where its memory ends, so owners
//     must pass the record as it was built in the buffer (any slice of it
//     that keeps its capacity); a slice with a smaller capacity is taken
//     for memory the pool does not manage and is not counted.
//   - Retain reports false for a buffer already retired (its record was
//     dropped while the caller still held it): the caller must then keep a
//     copy instead.
//   - The pool holds at most Options.MaxBytes of retired and free buffers;
//     past that it leaves them to the garbage collector, which is always
//     safe. Those bytes are part of the daemon's memory bound.
//   - Buffers are not cleared when reused: callers overwrite all of them.
package bufpool
