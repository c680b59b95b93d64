package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"text/tabwriter"

	"github.com/tiercache/tiercache/invalidation"
)

// shareSamples is how many synthetic keys members' shares are estimated
// from: the estimate's standard deviation is at most 0.16 points.
const shareSamples = 100_000

// members prints one line per live daemon of the members bucket, sorted by
// node id: node id, peer address ("-" without one), state ("live": the
// bucket holds only daemons that heartbeat), applied registry revision,
// and share of the keys ("-" for a daemon that serves no peers).
func (c *ctl) members(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	js, err := c.jetstream(cctx)
	if err != nil {
		return err
	}
	if js == nil {
		return &exitError{1, fmt.Sprintf("the daemon at %s runs without NATS (--nats off): it has no cluster members", c.o.socket)}
	}
	ms, err := invalidation.MembersIn(cctx, js, c.o.members)
	if err != nil {
		return err
	}
	var owners []string
	for _, m := range ms {
		if m.Peer != "" {
			owners = append(owners, m.Node)
		}
	}
	shares := keyShares(hrwOwner(owners), shareSamples)
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	for _, m := range ms {
		peer, share := "-", "-"
		if m.Peer != "" {
			peer, share = m.Peer, fmt.Sprintf("%.1f%%", 100*shares[m.Node])
		}
		fmt.Fprintf(tw, "%s\t%s\tlive\tapplied=%d\t%s\n", m.Node, peer, m.Applied, share)
	}
	return tw.Flush()
}

// keyShares returns the fraction of n synthetic keys that owner assigns
// to each node id; owner returns "" when no node owns a key. It is the
// estimate of each member's share of the key space for any ownership
// function, so that the peer package's ring can be passed as it is.
func keyShares(owner func(key string) string, n int) map[string]float64 {
	counts := map[string]int{}
	key := make([]byte, 0, 32)
	for i := range n {
		key = strconv.AppendInt(append(key[:0], "{model@v1}sample-"...), int64(i), 10)
		if o := owner(string(key)); o != "" {
			counts[o]++
		}
	}
	shares := make(map[string]float64, len(counts))
	for node, k := range counts {
		shares[node] = float64(k) / float64(n)
	}
	return shares
}

// hrwOwner returns the owner function of rendezvous (highest random
// weight) hashing over nodes: a key belongs to the node whose hash with
// it scores highest, so removing a node moves only that node's keys. Its
// scores are go-rendezvous's (xorshift-multiply of the key's and the
// node's hashes), with FNV-1a as the hash.
func hrwOwner(nodes []string) func(key string) string {
	hashes := make([]uint64, len(nodes))
	for i, n := range nodes {
		hashes[i] = hashString(n)
	}
	return func(key string) string {
		if len(nodes) == 0 {
			return ""
		}
		k := hashString(key)
		best, top := 0, xorshiftMult64(k^hashes[0])
		for i, h := range hashes[1:] {
			if s := xorshiftMult64(k ^ h); s > top {
				best, top = i+1, s
			}
		}
		return nodes[best]
	}
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func xorshiftMult64(x uint64) uint64 {
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	return x * 2685821657736338717
}
