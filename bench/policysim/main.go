package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	quick := flag.Bool("quick", false, "small traces (100,000 prompts, 20,000 + 40,000 requests, no budget trace): seconds instead of minutes")
	mems := flag.String("mem", "64,128,256", "--mem-max values to simulate, in MiB")
	factor := flag.Int64("disk-factor", 10, "--disk-max is this × --mem-max; single-tier policies get the sum")
	values := flag.String("values", "118KB,mix", "value models: 118KB (every value 118 KB), mix (one key in ten 4 MiB)")
	workers := flag.Int("workers", 2, "cells simulated in parallel")
	out := flag.String("out", "", "write the markdown report here instead of standard output")
	flag.Parse()

	cfg := Config{Shape: FullShape(), DiskFactor: *factor, Policies: Policies, Workers: *workers}
	if *quick {
		cfg.Shape = Shape{Keys: 100_000, Warm: 20_000, Measured: 40_000, LoopFactor: 1.1, Seed: 1}
	}
	for _, m := range strings.Split(*mems, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(m), 10, 64)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "policysim: -mem %q: want MiB counts like 64,128\n", *mems)
			os.Exit(2)
		}
		cfg.MemMax = append(cfg.MemMax, n*MiB)
	}
	for _, v := range strings.Split(*values, ",") {
		switch Values(v) {
		case Uniform, Mixed:
			cfg.Values = append(cfg.Values, Values(v))
		default:
			fmt.Fprintf(os.Stderr, "policysim: -values %q: want 118KB, mix or both\n", *values)
			os.Exit(2)
		}
	}
	start := time.Now()
	cells := Simulate(cfg, func(s string) {
		fmt.Fprintf(os.Stderr, "%6.1fs %s\n", time.Since(start).Seconds(), s)
	})
	w := os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "policysim:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	Report(w, cfg, cells)
}
