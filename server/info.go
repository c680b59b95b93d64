package server

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/tiercache/tiercache/internal/hugepage"
	"github.com/tiercache/tiercache/tier"
)

// pathMatch matches CONFIG GET patterns (glob, as Redis).
var pathMatch = path.Match

var infoSections = []string{"server", "clients", "memory", "stats", "tiers", "cluster", "peers", "models", "keyspace"}

func cmdInfo(c *conn, args [][]byte) bool {
	want := map[string]bool{}
	for _, a := range args[1:] {
		s := strings.ToLower(string(a))
		switch s {
		case "all", "everything", "default":
			for _, n := range infoSections {
				want[n] = true
			}
		default:
			want[s] = true
		}
	}
	if len(want) == 0 {
		for _, n := range infoSections {
			want[n] = true
		}
	}
	c.w.bulkString(c.s.info(want))
	return false
}

// info renders INFO in Redis' text format.
func (s *Server) info(want map[string]bool) string {
	var b strings.Builder
	section := func(name string, lines ...any) {
		if !want[strings.ToLower(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for i := 0; i+1 < len(lines); i += 2 {
			fmt.Fprintf(&b, "%s:%v\r\n", lines[i], lines[i+1])
		}
	}
	st := s.opts.Cache.Stats()
	up := time.Since(s.started)
	section("Server",
		"redis_version", redisVersion,
		"tiercache_version", s.opts.Version,
		"node_id", s.opts.NodeID,
		"redis_mode", "standalone",
		"os", runtime.GOOS+" "+runtime.GOARCH,
		"go_version", runtime.Version(),
		"go_maxprocs", runtime.GOMAXPROCS(0),
		"process_id", os.Getpid(),
		"uptime_in_seconds", int64(up.Seconds()),
		"uptime_in_days", int64(up.Hours()/24),
	)
	section("Clients",
		"connected_clients", s.connected.Load(),
		"maxclients", s.opts.MaxClients,
		"rejected_connections", s.rejected.Load(),
		"inflight_bytes", s.budget.inUse.Load(),
		"inflight_budget_bytes", s.budget.mainSize+s.budget.small.size,
		"budget_waiting_clients", s.budget.waiting.Load(),
	)
	var ms runtime.MemStats
	if want["memory"] {
		runtime.ReadMemStats(&ms)
	}
	rss := residentBytes()
	bs := s.opts.Cache.Buffers().Stats()
	section("Memory",
		"used_memory", st.L1.Bytes,
		"used_memory_human", human(st.L1.Bytes),
		"used_memory_rss", rss,
		"used_memory_rss_human", human(rss),
		"used_memory_go_heap", ms.HeapAlloc,
		"maxmemory", st.L1.MaxBytes,
		"maxmemory_human", human(st.L1.MaxBytes),
		"maxmemory_policy", s.opts.MaxmemoryPolicy,
		"memory_bound", s.opts.MemoryBound,
		"memory_bound_human", human(s.opts.MemoryBound),
		"recycled_buffers_bytes", bs.Bytes,
		"recycled_buffers_max_bytes", s.opts.Cache.Buffers().MaxBytes(),
		"value_buffers_read", bs.Gets,
		"value_buffers_reused", bs.Reused,
		"huge_pages", hugepage.State(),
		"used_memory_huge_pages", hugePageBytes(want["memory"]),
		"transparent_hugepage", hugepage.Mode(),
	)
	ls := s.leases.Stats()
	section("Stats",
		"total_connections_received", s.totalConns.Load(),
		"total_commands_processed", s.cmds.total(),
		"keyspace_hits", st.Hits,
		"keyspace_misses", st.Misses,
		"rejected_stale_writes", st.StaleWrites,
		"auth_failures", s.authFailures.Load(),
		"leases_granted", ls.Granted,
		"lease_waits", ls.Waits,
		"lease_wakeups", ls.Wakeups,
		"leases_expired", ls.Expired,
		"leases_active", ls.Active,
		"lease_waiters", ls.Waiting,
		"leases_max", ls.Max,
		"leases_refused", ls.Refused,
	)
	section("Tiers",
		"l1_hits", st.L1Hits,
		"l1_misses", st.L1Misses,
		"l2_hits", st.L2Hits,
		"l2_misses", st.L2Misses,
		"promotions", st.Promotions,
		"demotions", st.Demotions,
		"l1_evictions", st.L1.Evictions,
		"l2_evictions", st.L2.Evictions,
		"l1_admitted", st.L1.Admitted,
		"l1_rejected", st.L1.Rejected,
		"l2_admitted", st.L2.Admitted,
		"l2_rejected", st.L2.Rejected,
		"l1_bytes", st.L1.Bytes,
		"l1_max_bytes", st.L1.MaxBytes,
		"l1_keys", st.L1.Keys,
		"l1_warmup_done", b2i(st.WarmupDone),
		"l1_warmup_bytes", st.WarmupBytes,
		"l1_warmup_keys", st.WarmupKeys,
		"l2_bytes", st.L2.Bytes,
		"l2_max_bytes", st.L2.MaxBytes,
		"l2_keys", st.L2.Keys,
		"l2_corrupt_entries", st.L2.Corrupt,
		"l2_errors", st.L2.Errors,
		"l2_write_bytes", st.L2.Written,
		"l2_second_chances", st.L2.SecondChances,
		"l2_read_errors", st.L2ReadErrors,
		"l2_write_errors", st.L2WriteErrors,
		"pending_write_bytes", st.PendingBytes,
		"pending_writes_dropped", st.PendingDropped,
		"write_policy", st.WritePolicy,
	)
	var ci ClusterInfo
	if s.opts.Cluster != nil {
		ci = s.opts.Cluster()
	}
	lines := []any{
		"nats_connected", b2i(ci.NATSConnected),
		"models_revision", st.ModelsRevision,
		"models_known", st.ModelsKnown,
		"rollouts_applied", st.RolloutsApplied,
	}
	for _, kv := range ci.Extra {
		lines = append(lines, kv[0], kv[1])
	}
	section("Cluster", lines...)
	if s.opts.Peers != nil && want["peers"] {
		p := s.opts.Peers()
		section("Peers",
			"peer_listen", p.Listen,
			"peers", p.Peers,
			"peers_live", p.Live,
			"peer_hits", p.Hits,
			"peer_misses", p.Misses,
			"peer_fenced", p.Fenced,
			"peer_errors", p.Errors,
			"peer_timeouts", p.Timeouts,
			"peer_skipped", p.Skipped,
			"peer_hit_ratio", fmt.Sprintf("%.4f", ratio(p.Hits, p.Hits+p.Misses+p.Errors+p.Timeouts+p.Skipped)),
			"peer_sets_forwarded", p.SetsForwarded,
			"peer_sets_refused", p.SetsRefused,
			"peer_sets_dropped", p.SetsDropped,
			"peer_sets_near", p.SetsNear,
			"peer_served", p.Served,
			"peer_served_hits", p.ServedHits,
			"peer_sets_received", p.SetsReceived,
			"peer_sets_stale", p.SetsStale,
			"peer_auth_failures", p.AuthFailures,
			"peer_bytes_in", p.BytesIn,
			"peer_bytes_out", p.BytesOut,
		)
	}
	if want["models"] {
		ms := s.opts.Cache.ModelStats()
		lines := make([]any, 0, 2*len(ms.Models)+4)
		for _, m := range ms.Models {
			lines = append(lines, "model_"+infoEscape(m.Model),
				"version="+infoEscape(m.Version)+","+countsField(m.KeyCounts))
		}
		lines = append(lines, "unscoped", countsField(ms.Unscoped), "unregistered", countsField(ms.Unregistered))
		section("Models", lines...)
	}
	section("Keyspace", "db0", fmt.Sprintf("keys=%d,expires=%d,avg_ttl=0", s.opts.Cache.Keys(), st.L2.Expiring))
	return b.String()
}

// countsField formats hits, misses and their ratio as INFO's
// comma-separated fields (redis-py parses them into a dict).
func countsField(c tier.KeyCounts) string {
	ratio := 0.0
	if n := c.Hits + c.Misses; n > 0 {
		ratio = float64(c.Hits) / float64(n)
	}
	return fmt.Sprintf("hits=%d,misses=%d,hit_ratio=%.4f", c.Hits, c.Misses, ratio)
}

// infoEscape makes a model name or version safe inside an INFO line, where
// ':' ends the field name and ',' and '=' split the value: bytes other than
// letters, digits and "-._/@+" become %XX (so "openai/clip-vit-large-patch14"
// stays as it is).
func infoEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || strings.IndexByte("-._/@+", ch) >= 0 {
			if b != nil {
				b = append(b, ch)
			}
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		b = append(b, '%', hex[ch>>4], hex[ch&15])
	}
	if b == nil {
		return s
	}
	return string(b)
}

// human formats a byte count as Redis does (1.50M).
func human(n int64) string {
	const unit = 1024
	f := float64(n)
	for _, u := range []string{"B", "K", "M", "G", "T"} {
		if f < unit || u == "T" {
			if u == "B" {
				return fmt.Sprintf("%dB", n)
			}
			return fmt.Sprintf("%.2f%s", f, u)
		}
		f /= unit
	}
	return ""
}

// residentBytes is the process' resident set size, from /proc (0 where
// there is none).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	if _, err := fmt.Sscan(string(b), &size, &res); err != nil {
		return 0
	}
	return res * int64(os.Getpagesize())
}

// hugePageBytes is the process' memory in transparent huge pages
// (AnonHugePages of /proc/self/smaps_rollup; 0 where there is none). Only
// read when the memory section is asked for: the kernel walks the
// process' page tables to answer.
func hugePageBytes(read bool) int64 {
	if !read {
		return 0
	}
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "AnonHugePages:"); ok {
			var kb int64
			if _, err := fmt.Sscan(rest, &kb); err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// ratio is n/of, 0 when of is.
func ratio(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}
