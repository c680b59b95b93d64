// Package lease is the lease table behind LEASE.GET, LEASE.MGET and
// LEASE.RELEASE: stampede protection for one daemon's keys. When many
// clients miss a key at once, the first is granted its lease (a random
// token) and computes the value; the others wait until a SET of the key
// completes the lease and wakes them with the value, the lease expires or
// is released (then the first waiter takes it over), or their own wait
// runs out. The RESP server (package server) and the fleet's owner side
// (package peer) both use a Table; the protocol, the waiting itself and
// the client's connection stay theirs.
//
// # Basics
//
// Acquire grants a key's lease, or queues a Waiter behind its holder, or,
// without a Waiter, reports that another holds it. Complete ends a lease
// after its key was stored and hands the value to every waiter; Release
// ends it early and Expire's timer at its TTL, both handing it over to the
// first waiter. A Waiter is resolved at most once, with one send on its
// notify channel; Leave takes it out of its queue when its caller stops
// waiting, and its Outcome is final from then on.
//
// Get is LEASE.GET and LEASE.MGET on top of these, for both servers: the
// lookup, the grant, the second lookup after a grant (a SET may have
// landed in between), and the wait, which ends early when the caller's
// context is done (its client hung up: what it holds is passed on).
//
// # Invariants
//
//   - A key has at most one lease; a token holds it until Complete,
//     Release, its TTL, or a hand-over to a waiter, which gets a new token.
//   - Leases and waiters together never exceed Options.Max: an Acquire
//     that would add one past it grants and queues nothing and returns
//     ErrFull. A miss without a Waiter holds nothing and is never refused.
//   - Each lease or waiter holds at most Bytes of memory (keys of up to
//     128 bytes; a longer key adds its length), so a table holds at most
//     Max × Bytes: 49 MiB at the daemon's default of 100,000.
//
// # Caveats
//
// Leases live in this process's memory only: they are not replicated and
// do not survive a restart. Complete copies the value for the waiters,
// once per completion, whatever their number. The table does not know
// whether a Waiter's client is still there: its user must Leave, with
// abandon, when the client hangs up, or a lease handed to it would be held
// until its TTL.
package lease
