package main

import (
	"fmt"
	"io"
	"strings"
)

// Report writes the cells as markdown: per value model, the hit ratio of
// every policy with its ratio to OPT; then, for the two-tier models, the
// bytes written to L2 and the entries held.
func Report(w io.Writer, cfg Config, cells []Cell) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	for _, v := range cfg.Values {
		p("\n#### Hit ratio, %s values (÷ OPT in brackets)\n\n", v)
		if v == Mixed {
			p("With mixed sizes OPT is Belady's furthest-next-use with bypass, a heuristic, not a bound: a policy may beat it. The bound column is the upper bound.\n\n")
		}
		p("| trace | mem + disk | ceiling | bound |")
		for _, pol := range cfg.Policies {
			p(" %s |", pol.Name)
		}
		p("\n|---|---|---|---|%s\n", strings.Repeat("---|", len(cfg.Policies)))
		for _, c := range cells {
			if c.Values != v {
				continue
			}
			p("| %s | %s | %.3f | %.3f |", c.Trace, capacity(c.MemMax, cfg.DiskFactor), c.Compulsory, c.Bound)
			for i, r := range c.Results {
				if i == 0 {
					p(" **%.3f** |", r.Hit)
					continue
				}
				p(" %.3f (%.2f) |", r.Hit, ratio(r.Hit, c.OPT()))
			}
			p("\n")
		}
	}
	var tiered []int
	for i, pol := range cfg.Policies {
		if pol.TwoTier {
			tiered = append(tiered, i)
		}
	}
	if len(tiered) == 0 {
		return
	}
	p("\n#### Two-tier models: MB written to L2 per 1,000 measured requests; distinct entries held at the end (L1 + L2)\n\n")
	p("| values | trace | mem + disk |")
	for _, i := range tiered {
		p(" %s |", cfg.Policies[i].Name)
	}
	p("\n|---|---|---|%s\n", strings.Repeat("---|", len(tiered)))
	for _, c := range cells {
		p("| %s | %s | %s |", c.Values, c.Trace, capacity(c.MemMax, cfg.DiskFactor))
		for _, i := range tiered {
			r := c.Results[i]
			p(" %.1f MB; %d (%d + %d) |", 1000*float64(r.L2Bytes)/float64(c.Requests)/1e6, r.Held.Keys, r.Held.L1, r.Held.L2)
		}
		p("\n")
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func capacity(mem, factor int64) string {
	return fmt.Sprintf("%d + %d MiB", mem/MiB, factor*mem/MiB)
}
