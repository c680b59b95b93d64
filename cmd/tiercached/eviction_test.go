package main

import (
	"testing"

	"github.com/tiercache/tiercache/policy"
)

// TestEvictionPolicyReported: each --eviction policy is the one INFO's
// maxmemory_policy and CONFIG GET maxmemory-policy name, and the default
// is the default policy.
func TestEvictionPolicyReported(t *testing.T) {
	for _, name := range append([]string{""}, policy.Names()...) {
		var extra []string
		want := policy.Default.RedisName()
		if name != "" {
			extra = []string{"--eviction", name}
			want = "allkeys-" + name
		}
		n := startNode(t, nil, extra...)
		c := n.client(t, "")
		if got := infoSection(t, c, "memory")["maxmemory_policy"]; got != want {
			t.Errorf("--eviction %q: INFO maxmemory_policy %q, want %q", name, got, want)
		}
		cfg, err := c.ConfigGet(ctxT(t), "maxmemory-policy").Result()
		if err != nil || cfg["maxmemory-policy"] != want {
			t.Errorf("--eviction %q: CONFIG GET maxmemory-policy %v, %v; want %q", name, cfg, err, want)
		}
		n.stop()
	}
}
