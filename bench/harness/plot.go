package harness

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writePlots draws the PNGs the report links and returns their names.
func writePlots(dir string, r *Results) ([]string, error) {
	var names []string
	add := func(name string, err error) error {
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		if name != "" {
			names = append(names, name)
		}
		return nil
	}
	for _, op := range []string{"GET", "SET"} {
		n, err := plotHot(dir, r, op)
		if err := add(n, err); err != nil {
			return names, err
		}
	}
	for _, f := range []func(string, *Results) (string, error){plotBudget, plotRestart, plotPropagation, plotFleet, plotFleetLoss} {
		n, err := f(dir, r)
		if err := add(n, err); err != nil {
			return names, err
		}
	}
	return names, nil
}

// systemsIn lists the systems of the rows in first-seen order.
func systemsIn[T any](rows []T, sys func(T) string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range rows {
		if s := sys(x); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// plotHot draws one panel per value size: throughput (MB/s, log scale)
// against connections, one line per system.
func plotHot(dir string, r *Results, op string) (string, error) {
	var rows []HotResult
	for _, x := range r.HotSet {
		if x.Op == op {
			rows = append(rows, x)
		}
	}
	if len(rows) == 0 {
		return "", nil
	}
	sizes := map[int]bool{}
	for _, x := range rows {
		sizes[x.Size] = true
	}
	var ss []int
	for s := range sizes {
		ss = append(ss, s)
	}
	sort.Ints(ss)
	systems := systemsIn(rows, func(x HotResult) string { return x.System })
	panels := make([][]*plot.Plot, 1)
	for _, size := range ss {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s %s", op, fmtBytes(int64(size)))
		p.X.Label.Text = "connections"
		p.Y.Label.Text = "requests/s"
		p.X.Scale = plot.LogScale{}
		var conns []float64
		for _, x := range rows {
			conns = append(conns, float64(x.Conns))
		}
		p.X.Tick.Marker = valueTicks(conns, "%.0f")
		p.Y.Min = 0
		var vs []any
		for _, s := range systems {
			var xys plotter.XYs
			for _, x := range rows {
				if x.System == s && x.Size == size && x.OpsPerSec > 0 {
					xys = append(xys, plotter.XY{X: float64(x.Conns), Y: x.OpsPerSec})
				}
			}
			if len(xys) > 0 {
				vs = append(vs, s, xys)
			}
		}
		if err := plotutil.AddLinePoints(p, vs...); err != nil {
			return "", err
		}
		p.Legend.Top = true
		panels[0] = append(panels[0], p)
	}
	name := fmt.Sprintf("hotset_%s.png", lower(op))
	return name, savePanels(filepath.Join(dir, name), panels, 5*vg.Inch*vg.Length(len(ss)), 4*vg.Inch)
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func savePanels(file string, panels [][]*plot.Plot, w, h vg.Length) error {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(panels), Cols: len(panels[0]), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(panels, t, dc)
	for j := range panels {
		for i, p := range panels[j] {
			p.Draw(canvases[j][i])
		}
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plotBudget draws hit ratio against memory budget, one line per system.
func plotBudget(dir string, r *Results) (string, error) {
	if len(r.Budget) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Cache-aside replay: Zipf s=%.2g over %d prompts, %s values", r.Config.BudgetZipfS, r.Config.BudgetKeys, fmtBytes(int64(r.Config.BudgetValue)))
	p.X.Label.Text = "memory budget (MiB)"
	p.Y.Label.Text = "hit ratio"
	p.X.Scale = plot.LogScale{}
	var budgets []float64
	for _, x := range r.Budget {
		budgets = append(budgets, float64(x.Budget)/MiB)
	}
	p.X.Tick.Marker = valueTicks(budgets, "%.0f")
	p.Y.Min, p.Y.Max = 0, 1
	var vs []any
	for _, s := range systemsIn(r.Budget, func(x BudgetResult) string { return x.System }) {
		var xys plotter.XYs
		for _, x := range r.Budget {
			if x.System == s {
				xys = append(xys, plotter.XY{X: float64(x.Budget) / MiB, Y: x.HitRatio})
			}
		}
		label := s
		if s == kindTiercache {
			label = fmt.Sprintf("tiercached (+ disk %.0f× budget)", r.Config.BudgetDiskFactor)
		}
		vs = append(vs, label, xys)
	}
	if err := plotutil.AddLinePoints(p, vs...); err != nil {
		return "", err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	const name = "budget_hit_ratio.png"
	return name, p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, name))
}

// plotRestart draws GET throughput after the restart against time since
// the process started.
func plotRestart(dir string, r *Results) (string, error) {
	p := plot.New()
	p.Title.Text = "GET throughput after a restart"
	p.X.Label.Text = "seconds since process start"
	p.Y.Label.Text = "GET/s"
	var vs []any
	for _, x := range r.Restart {
		if len(x.Windows) == 0 {
			continue
		}
		xys := plotter.XYs{{X: 0, Y: 0}, {X: x.FirstHitSeconds, Y: 0}}
		for i, w := range x.Windows {
			xys = append(xys, plotter.XY{X: x.FirstHitSeconds + float64(i+1)*x.WindowSeconds, Y: w})
		}
		vs = append(vs, fmt.Sprintf("%s (90%% of %.0f/s)", x.System, x.HotOpsPerSec), xys)
	}
	if len(vs) == 0 {
		return "", nil
	}
	if err := plotutil.AddLines(p, vs...); err != nil {
		return "", err
	}
	p.Legend.Top = true
	const name = "restart.png"
	return name, p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, name))
}

// plotPropagation draws the distribution of the per-rollout time until all
// daemons are stale-free, one line per keys-per-model run.
func plotPropagation(dir string, r *Results) (string, error) {
	if len(r.Propagation) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = "Rollout: time until every daemon is stale-free"
	p.X.Label.Text = "milliseconds after MODEL.ROLLOUT returned on A"
	p.Y.Label.Text = "fraction of rollouts"
	p.Y.Min, p.Y.Max = 0, 1
	var vs []any
	for _, x := range r.Propagation {
		s := append([]float64(nil), x.Samples...)
		sort.Float64s(s)
		var xys plotter.XYs
		for i, v := range s {
			xys = append(xys, plotter.XY{X: v / 1e3, Y: float64(i+1) / float64(len(s))})
		}
		vs = append(vs, fmt.Sprintf("%d keys/model, %d rollouts", x.Keys, x.Rollouts), xys)
	}
	if err := plotutil.AddLines(p, vs...); err != nil {
		return "", err
	}
	p.Legend.Top = true
	p.X.Min = 0
	if p.X.Max <= 0 || math.IsInf(p.X.Max, 0) {
		p.X.Max = 1
	}
	p.Legend.Left = true
	// The second panel shows the same samples in rollout order: whether
	// the latency drifts as rollouts accumulate.
	q := plot.New()
	q.Title.Text = "… in rollout order"
	q.X.Label.Text = "rollout"
	q.Y.Label.Text = "ms until every daemon is stale-free"
	q.Y.Min = 0
	vs = vs[:0]
	for _, x := range r.Propagation {
		var xys plotter.XYs
		for i, v := range x.Samples {
			xys = append(xys, plotter.XY{X: float64(i + 1), Y: v / 1e3})
		}
		vs = append(vs, fmt.Sprintf("%d keys/model", x.Keys), xys)
	}
	if err := plotutil.AddLinePoints(q, vs...); err != nil {
		return "", err
	}
	q.Legend.Top = true
	const name = "propagation.png"
	return name, savePanels(filepath.Join(dir, name), [][]*plot.Plot{{p, q}}, 12*vg.Inch, 4.5*vg.Inch)
}

// valueTicks labels exactly the given values (log axes label only whole
// decades otherwise).
func valueTicks(vals []float64, format string) plot.ConstantTicks {
	seen := map[float64]bool{}
	var ts plot.ConstantTicks
	for _, v := range vals {
		if !seen[v] {
			seen[v] = true
			ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf(format, v)})
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Value < ts[j].Value })
	return ts
}
