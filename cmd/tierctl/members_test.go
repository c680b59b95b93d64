package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiercache/tiercache/internal/natstest"
	"github.com/tiercache/tiercache/invalidation"
	"github.com/tiercache/tiercache/tier"
	"go.uber.org/zap/zaptest"
)

// TestKeyShares: the share of the keys is what the owner function says,
// and the rendezvous ring shares them evenly and moves only a leaving
// node's keys.
func TestKeyShares(t *testing.T) {
	parity := func(k string) string {
		if (k[len(k)-1]-'0')%2 == 0 {
			return "even"
		}
		return "odd"
	}
	if got := keyShares(parity, 1000); got["even"] != 0.5 || got["odd"] != 0.5 || len(got) != 2 {
		t.Fatalf("keyShares(parity) = %v", got)
	}
	if got := keyShares(hrwOwner(nil), 1000); len(got) != 0 {
		t.Fatalf("keyShares with no owners = %v", got)
	}

	nodes := []string{"node-a", "node-b", "node-c", "node-d"}
	for n := 1; n <= len(nodes); n++ {
		shares := keyShares(hrwOwner(nodes[:n]), shareSamples)
		for _, node := range nodes[:n] {
			if d := math.Abs(shares[node] - 1/float64(n)); d > 0.01 {
				t.Errorf("%d nodes: %s has %.2f%% of the keys", n, node, 100*shares[node])
			}
		}
	}
	four, three := hrwOwner(nodes), hrwOwner([]string{"node-a", "node-c", "node-d"})
	moved := 0
	for i := range shareSamples {
		k := "k" + strconv.Itoa(i)
		if was, now := four(k), three(k); was != now {
			if was != "node-b" {
				t.Fatalf("%s moved from %s to %s when node-b left", k, was, now)
			}
			moved++
		}
	}
	if f := float64(moved) / shareSamples; math.Abs(f-0.25) > 0.01 {
		t.Fatalf("node-b's leaving moved %.1f%% of the keys, want about 25%%", 100*f)
	}
}

// memStore is a tier.RegistryStore in memory.
type memStore struct {
	mu   sync.Mutex // guards meta
	meta map[string][]byte
}

func (s *memStore) Meta(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.meta[name]
	if !ok {
		return nil, tier.ErrNotFound
	}
	return v, nil
}

func (s *memStore) PutMeta(name string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.meta == nil {
		s.meta = map[string][]byte{}
	}
	s.meta[name] = value
	return nil
}

func (s *memStore) DropRange(start, end []byte) error { return nil }

// member starts an in-process daemon's Cluster on url, announcing peer;
// Close stops it (also in t.Cleanup).
type member struct {
	c   *invalidation.Cluster
	reg *tier.Registry
}

func startMember(t *testing.T, url, node, peer string) *member {
	t.Helper()
	reg, err := tier.OpenRegistry(&memStore{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := invalidation.Start(invalidation.Options{
		URLs:              url,
		NodeID:            node,
		PeerAddr:          peer,
		Cache:             reg,
		HeartbeatInterval: 100 * time.Millisecond,
		MemberTTL:         2 * time.Second,
		Logger:            zaptest.NewLogger(t),
	})
	if err != nil {
		_ = reg.Close()
		t.Fatal(err)
	}
	m := &member{c: c, reg: reg}
	t.Cleanup(m.close)
	return m
}

func (m *member) close() {
	_ = m.c.Close()
	_ = m.reg.Close()
}

// membersLines runs tierctl members and returns its lines split in fields.
func membersLines(t *testing.T, args ...string) [][]string {
	t.Helper()
	code, out, errs := tierctl(t, append(args, "members")...)
	if code != 0 {
		t.Fatalf("tierctl members: exit %d\n%s%s", code, out, errs)
	}
	var lines [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, strings.Fields(l))
		}
	}
	return lines
}

// TestMembers: tierctl members lists the daemons of a NATS cluster with
// their peer addresses, applied revision and share of the keys; a daemon
// without a peer address has none; one that closes is gone.
func TestMembers(t *testing.T) {
	srv := natstest.RunServer(t, nil)
	url := srv.ClientURL()
	a := startMember(t, url, "node-a", "127.0.0.1:7001")
	startMember(t, url, "node-b", "127.0.0.1:7002")
	startMember(t, url, "node-c", "")
	waitFor(t, 10*time.Second, "three members", func() bool { return len(membersLines(t, "--nats", url)) == 3 })
	if code, out, errs := tierctl(t, "--nats", url, "rollout", "clip", "v1", "--wait", "20s"); code != 0 {
		t.Fatalf("rollout --wait: exit %d\n%s%s", code, out, errs)
	}
	_, out, _ := tierctl(t, "--nats", url, "members")
	t.Logf("tierctl members:\n%s", out)
	lines := membersLines(t, "--nats", url)
	want := [][]string{
		{"node-a", "127.0.0.1:7001", "live", "applied=1"},
		{"node-b", "127.0.0.1:7002", "live", "applied=1"},
		{"node-c", "-", "live", "applied=1", "-"},
	}
	if len(lines) != len(want) {
		t.Fatalf("tierctl members: %q, want 3 lines", lines)
	}
	total := 0.0
	for i, w := range want {
		got := lines[i]
		if len(got) != 5 || strings.Join(got[:4], " ") != strings.Join(w[:4], " ") {
			t.Fatalf("line %d: %q, want %q and a share", i+1, got, w)
		}
		if len(w) == 5 {
			if got[4] != w[4] {
				t.Fatalf("line %d: share %q, want %q", i+1, got[4], w[4])
			}
			continue
		}
		share, err := strconv.ParseFloat(strings.TrimSuffix(got[4], "%"), 64)
		if err != nil || math.Abs(share-50) > 1.5 {
			t.Fatalf("line %d: share %q, want about 50%%", i+1, got[4])
		}
		total += share
	}
	if math.Abs(total-100) > 0.11 {
		t.Fatalf("the peers' shares add up to %.1f%%", total)
	}

	// node-a closes (deleting its entry): it is gone, and node-b owns
	// every key.
	a.close()
	lines = membersLines(t, "--nats", url)
	if got := fmt.Sprint(lines); got != "[[node-b 127.0.0.1:7002 live applied=1 100.0%] [node-c - live applied=1 -]]" {
		t.Fatalf("tierctl members after node-a closed: %s", got)
	}
}
