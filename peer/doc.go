// Package peer is the fleet cache's transport and ownership: which daemon
// owns a key (Ring), and how daemons ask each other for values.
//
// # Basics
//
// Each key has one owner among the members of the fleet: rendezvous
// (highest random weight) hashing over the members' node ids
// (github.com/dgryski/go-rendezvous with xxhash), so that a member
// joining or leaving moves only about 1/N of the keys, and every daemon
// that sees the same members computes the same owners.
package peer
