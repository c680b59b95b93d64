// Command ceiling is the smallest Go server that answers redis-benchmark's
// SET and GET over a Unix socket: a map under a lock, no TTLs, no tiers, no
// checksums, no counters. It exists to measure what the Go runtime itself
// allows on a machine, so that tiercached's small-value figures can be read
// against it as well as against Redis:
//
//	go run ./bench/ceiling -socket /tmp/ceiling.sock -loop goroutines
//	go run ./bench/ceiling -socket /tmp/ceiling.sock -loop epoll
//
// With -loop goroutines each connection has its own goroutine reading
// through the runtime's network poller, as tiercached's server does. With
// -loop epoll one goroutine locked to its thread waits in epoll_wait and
// reads, answers and writes every ready connection in turn, as Redis'
// event loop does (Linux only). bench/ceiling.sh runs both beside
// redis-server and tiercached.
//
// It is a measuring instrument, not a cache: it never evicts and keeps
// every value until it exits.
package main
