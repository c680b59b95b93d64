// Command bench runs tiercache's benchmark harness: it builds tiercached,
// starts it and each peer found on PATH (redis-server, memcached) on Unix
// sockets in a temporary directory, drives them all with the same load
// generator and writes results.md, results.json and PNG plots.
//
//	go run ./bench --quick                 # < 2 minutes
//	go run ./bench --out bench/results     # the full run (22–24 minutes)
//	go run ./bench --workloads peerget     # the peer-served GET alone (minutes)
//
// The logic is in bench/harness (Config, Run, Write); this file binds flags.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/tiercache/tiercache/bench/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: "+err.Error())
		os.Exit(1)
	}
}

func run() error {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	quick := fs.Bool("quick", false, "reduced sizes and durations: finishes in under 2 minutes on 2 cores")
	out := fs.String("out", "", "output directory (default bench/out under the module root)")
	workloads := fs.StringSlice("workloads", nil, "workloads to run (default: "+strings.Join(harness.AllWorkloads, ",")+"; also: fleet, which takes longer, and peerget, the fleet's peer-served GET alone)")
	peers := fs.StringSlice("peers", []string{"redis", "memcached"}, "peers to compare with, when found on PATH")
	seed := fs.Uint64("seed", 1, "seed of key choices and the replayed trace")
	daemon := fs.String("tiercached", "", "tiercached binary to use (default: go build ./cmd/tiercached)")
	keep := fs.Bool("keep-workdir", false, "keep the temporary directory of sockets and data")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	restartBytes := fs.String("restart-bytes", "", "data cached before the restart workload's restart, e.g. 10GiB (default: the mode's)")
	rewrite := fs.Bool("rewrite", false, "run nothing: re-render results.md and the plots from the output directory's results.json")
	hotRounds := fs.Int("hot-rounds", 0, "hot-set rounds, the systems alternating within each; cells report their median round (default: 3, quick 1)")
	budgets := fs.StringSlice("budgets", nil, "budget workload memory budgets, e.g. 64MiB,128MiB; replaces the mode's and skips the peer-only budgets (default: the mode's)")
	propDaemons := fs.Int("prop-daemons", 0, "daemons in the propagation cluster (default 5)")
	natsServer := fs.String("nats-server", "", "run the propagation cluster on this standalone nats-server binary instead of NATS embedded in daemon A; \"build\" builds it from the module (go build github.com/nats-io/nats-server/v2). The fleet workload always runs on a standalone server: this binary, or one built from the module")
	propRuns := fs.StringSlice("prop-runs", nil, "propagation runs as KEYSxROLLOUTS, e.g. 10000x200,1000000x20 (default: the mode's)")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: go run ./bench [flags]\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			return nil
		}
		return err
	}
	cfg := harness.FullConfig()
	if *quick {
		cfg = harness.QuickConfig()
	}
	if len(*workloads) > 0 {
		cfg.Workloads = *workloads
	}
	cfg.Peers = *peers
	cfg.Seed = *seed
	cfg.Tiercached = *daemon
	cfg.KeepWorkDir = *keep
	if *hotRounds != 0 {
		cfg.HotRounds = *hotRounds
	}
	if *restartBytes != "" {
		n, err := parseSize(*restartBytes)
		if err != nil {
			return fmt.Errorf("--restart-bytes: %w", err)
		}
		cfg.RestartBytes = n
	}
	if len(*budgets) > 0 {
		cfg.BudgetMem, cfg.BudgetPeerMem = nil, []int64{} // empty, not nil: nil takes the defaults
		for _, b := range *budgets {
			n, err := parseSize(b)
			if err != nil {
				return fmt.Errorf("--budgets: %w", err)
			}
			cfg.BudgetMem = append(cfg.BudgetMem, n)
		}
	}
	if len(*propRuns) > 0 {
		cfg.PropRuns = nil
		for _, r := range *propRuns {
			var pr harness.PropRun
			if _, err := fmt.Sscanf(r, "%dx%d", &pr.Keys, &pr.Rollouts); err != nil {
				return fmt.Errorf("--prop-runs %q: want KEYSxROLLOUTS", r)
			}
			cfg.PropRuns = append(cfg.PropRuns, pr)
		}
	}
	if *propDaemons != 0 {
		cfg.PropDaemons = *propDaemons
	}
	cfg.PropNATSServer = *natsServer
	cfg.CommandLine = "go run ./bench " + strings.Join(os.Args[1:], " ")
	if !*quiet {
		cfg.Log = os.Stderr
	}
	if *out == "" {
		root, err := harness.ModuleRoot()
		if err != nil {
			return err
		}
		*out = filepath.Join(root, "bench", "out")
	}
	if *rewrite {
		b, err := os.ReadFile(filepath.Join(*out, "results.json"))
		if err != nil {
			return err
		}
		var res harness.Results
		if err := json.Unmarshal(b, &res); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(*out, "results.json"), err)
		}
		return harness.Write(*out, &res)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := harness.Run(ctx, cfg)
	if res != nil {
		if werr := harness.Write(*out, res); werr != nil && err == nil {
			err = werr
		}
		fmt.Fprintf(os.Stderr, "results in %s (%.0f s)\n", *out, res.Seconds)
	}
	return err
}

// parseSize reads 512MiB, 10GiB, 1.5GB or plain bytes.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 256MiB, 10GiB)", s)
	}
	return int64(v * mult), nil
}
