package reports

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"loramix/suites/results"
	"loramix/suites/sweep"
)

// Chart sizes.
var (
	wide   = 18 * vg.Centimeter
	normal = 16 * vg.Centimeter
	tall   = 12 * vg.Centimeter
)

// Colours for series, distinguishable in print and for most colour-blind
// readers (Okabe–Ito).
var series = []color.Color{
	color.NRGBA{0x00, 0x72, 0xb2, 0xff}, // blue
	color.NRGBA{0xd5, 0x5e, 0x00, 0xff}, // vermillion
	color.NRGBA{0x00, 0x9e, 0x73, 0xff}, // green
	color.NRGBA{0xcc, 0x79, 0xa7, 0xff}, // purple
	color.NRGBA{0xe6, 0x9f, 0x00, 0xff}, // orange
	color.NRGBA{0x56, 0xb4, 0xe9, 0xff}, // sky
}

func seriesColor(i int) color.Color { return series[i%len(series)] }

// newPlot starts a plot with a title a size above the axis labels.
func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.Title.Padding = vg.Points(8)
	return p
}

func fmtWeight(w float64) string { return strconv.FormatFloat(w, 'g', -1, 64) }

// bleuHeatmaps draws, for each combination method (and adapter pair) with
// two-adapter records on the BLEU task, BLEU over the grid of the two
// weights. It returns the figures and a note per method it could not draw.
func bleuHeatmaps(d *dataset, task string) ([]*figure, []string) {
	cells := map[heatGroup]map[[2]float64]float64{}
	var order []heatGroup
	for _, r := range d.recs {
		s := r.System
		m, ok := r.Metrics["bleu"]
		if r.Task != task || s.Method == "" || len(s.Adapters) != 2 || len(s.Weights) != 2 || !ok {
			continue
		}
		method := s.Method
		if s.Exact {
			method += "-exact"
		}
		g := heatGroup{method, [2]string{s.Adapters[0], s.Adapters[1]}}
		if cells[g] == nil {
			cells[g] = map[[2]float64]float64{}
			order = append(order, g)
		}
		cells[g][[2]float64{s.Weights[0], s.Weights[1]}] = m.Value
	}
	var figs []*figure
	var notes []string
	for _, g := range order {
		c := cells[g]
		if dropped := keepMainGrid(c); dropped > 0 {
			notes = append(notes, fmt.Sprintf("BLEU heatmap for %s(%s, %s): %d points off the main grid (e.g. from a search) are not shown", g.method, g.adapters[0], g.adapters[1], dropped))
		}
		var xs, ys []float64
		for w := range c {
			xs = append(xs, w[0])
			ys = append(ys, w[1])
		}
		xs, ys = uniqueSorted(xs), uniqueSorted(ys)
		if len(c) < 2 {
			notes = append(notes, fmt.Sprintf("BLEU heatmap for %s(%s, %s): only one weight pair, no grid to draw", g.method, g.adapters[0], g.adapters[1]))
			continue
		}
		m := newMatrix(len(ys), len(xs))
		for w, v := range c {
			m.z[slices.Index(ys, w[1])][slices.Index(xs, w[0])] = v
		}
		lo, hi, _ := m.finite()
		cm := viridis(lo, hi)

		p := newPlot(fmt.Sprintf("BLEU on %s over the weight grid, %s merge", task, g.method))
		p.X.Label.Text = fmt.Sprintf("weight of adapter %s", g.adapters[0])
		p.Y.Label.Text = fmt.Sprintf("weight of adapter %s", g.adapters[1])
		p.X.Tick.Marker = indexTicks(mapStrings(xs, fmtWeight))
		p.Y.Tick.Marker = indexTicks(mapStrings(ys, fmtWeight))
		p.X.Padding, p.Y.Padding = 0, 0
		addHeat(p, m, cm, func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) })

		name := fmt.Sprintf("bleu-heatmap-%s-%s", fileSafe(g.method), fileSafe(task))
		if len(order) > 1 && countMethod(order, g.method) > 1 {
			name += "-" + fileSafe(g.adapters[0]+"-"+g.adapters[1])
		}
		side := vg.Length(math.Max(float64(normal), float64(vg.Length(len(xs))*vg.Centimeter*1.3+6*vg.Centimeter)))
		figs = append(figs, &figure{
			name:    name,
			title:   p.Title.Text,
			caption: fmt.Sprintf("Corpus BLEU (sacreBLEU, 0–100) of each %s combination of %s and %s on the %s task; grey cells were not evaluated.", g.method, g.adapters[0], g.adapters[1], task),
			w:       side + 3*vg.Centimeter,
			h:       side - 2*vg.Centimeter,
			draw:    withColorBar(p, cm, "BLEU (0–100)"),
		})
	}
	return figs, notes
}

// crowded is the number of distinct weights on an axis past which a
// heatmap keeps only its main grid.
const crowded = 12

// keepMainGrid removes, when an axis has more than crowded distinct
// weights, the cells with a rare weight on either axis: one used by fewer
// than half as many cells as the most used weight on its axis (or by a
// single cell), repeatedly until none is left. A sweep's grid survives;
// scattered points such as a search's do not. It returns how many cells it
// removed.
func keepMainGrid(c map[[2]float64]float64) int {
	counts := func() [2]map[float64]int {
		n := [2]map[float64]int{{}, {}}
		for w := range c {
			n[0][w[0]]++
			n[1][w[1]]++
		}
		return n
	}
	if n := counts(); len(n[0]) <= crowded && len(n[1]) <= crowded {
		return 0
	}
	removed := 0
	for {
		n := counts()
		var most [2]int
		for a := range 2 {
			for _, k := range n[a] {
				most[a] = max(most[a], k)
			}
		}
		before := removed
		for w := range c {
			for a := range 2 {
				if k := n[a][w[a]]; k < 2 || 2*k < most[a] {
					delete(c, w)
					removed++
					break
				}
			}
		}
		if removed == before {
			return removed
		}
	}
}

// heatGroup is one BLEU heatmap: a method and an adapter pair.
type heatGroup struct {
	method   string
	adapters [2]string
}

func countMethod(gs []heatGroup, method string) int {
	n := 0
	for _, g := range gs {
		if g.method == method {
			n++
		}
	}
	return n
}

// maxBoxes caps the systems in one box-plot chart.
const maxBoxes = 30

// lengthBoxes draws, per task with response lengths, the distribution of
// response lengths of each picked system as horizontal box plots.
func lengthBoxes(d *dataset, pick []results.System) ([]*figure, []string) {
	var figs []*figure
	var notes []string
	for _, task := range d.tasks {
		var names []string
		var vals []plotter.Values
		for _, s := range pick {
			r := d.get(s, task)
			if r == nil || len(r.Lengths) == 0 {
				continue
			}
			v := make(plotter.Values, len(r.Lengths))
			for i, l := range r.Lengths {
				v[i] = float64(l)
			}
			names = append(names, s.Key())
			vals = append(vals, v)
		}
		if len(vals) == 0 {
			continue
		}
		p := newPlot(fmt.Sprintf("Response length on %s, per system", task))
		p.X.Label.Text = "response length (words)"
		p.X.Min = 0
		p.Y.Label.Text = "system"
		for i, v := range vals {
			b, err := plotter.NewBoxPlot(vg.Points(9), float64(len(vals)-1-i), v)
			if err != nil {
				notes = append(notes, fmt.Sprintf("response lengths on %s, %s: %v", task, names[i], err))
				continue
			}
			b.Horizontal = true
			b.FillColor = color.NRGBA{0x56, 0xb4, 0xe9, 0x90}
			p.Add(b)
		}
		rev := slices.Clone(names)
		slices.Reverse(rev) // the first system on top
		p.NominalY(rev...)
		p.Add(plotter.NewGrid())
		h := vg.Length(len(vals))*vg.Points(18) + 4*vg.Centimeter
		figs = append(figs, plotFigure("lengths-"+fileSafe(task),
			fmt.Sprintf("Distribution of response lengths in words on the %s task: box from the 25th to the 75th percentile, line at the median, whiskers to the furthest points within 1.5 IQR, circles beyond.", task),
			p, wide, h))
	}
	return figs, notes
}

// maxRouting caps the routing matrices drawn.
const maxRouting = 12

// pickSystems chooses at most max systems to show one by one: all of them
// when they fit; else the base, the single adapters, then the systems on
// the Pareto front, then the rest, in system order. The note says what was
// left out ("" when nothing was).
func pickSystems(d *dataset, front []sweep.Point, max int, what string) ([]results.System, string) {
	if len(d.systems) <= max {
		return d.systems, ""
	}
	onFront := map[string]bool{}
	for _, p := range front {
		onFront[p.Label] = true
	}
	var first, rest []results.System
	for _, s := range d.systems {
		if s.Method == "" || onFront[s.Key()] {
			first = append(first, s)
		} else {
			rest = append(rest, s)
		}
	}
	pick := append(first, rest...)[:max]
	slices.SortFunc(pick, compareSystems)
	return pick, fmt.Sprintf("%s: showing %d of %d systems (the base, single adapters and Pareto-front systems first)", what, max, len(d.systems))
}

// routingMatrices draws, per picked system with routing shares, the matrix
// of prompt format (task) against behaviour, with the shares in the cells.
func routingMatrices(d *dataset, pick []results.System) ([]*figure, []string) {
	var figs []*figure
	var notes []string
	var withRouting []results.System
	for _, s := range pick {
		for _, t := range d.tasks {
			if r := d.get(s, t); r != nil && len(r.Routing) > 0 {
				withRouting = append(withRouting, s)
				break
			}
		}
	}
	for _, s := range withRouting {
		var formats []string
		behaviours := map[string]bool{}
		for _, t := range d.tasks {
			if r := d.get(s, t); r != nil && len(r.Routing) > 0 {
				formats = append(formats, t)
				for b := range r.Routing {
					behaviours[b] = true
				}
			}
		}
		var cols []string
		for b := range behaviours {
			cols = append(cols, b)
		}
		sort.Strings(cols)
		m := newMatrix(len(formats), len(cols))
		for i, f := range formats {
			r := d.get(s, f)
			for j, b := range cols {
				if v, ok := r.Routing[b]; ok {
					m.z[len(formats)-1-i][j] = v // the first format on top
				}
			}
		}
		rev := slices.Clone(formats)
		slices.Reverse(rev)
		cm := viridis(0, 1)
		p := newPlot("Routing of " + s.Key())
		p.X.Label.Text = "behaviour of the output"
		p.Y.Label.Text = "prompt format (task)"
		p.X.Tick.Marker = indexTicks(cols)
		p.Y.Tick.Marker = indexTicks(rev)
		p.X.Padding, p.Y.Padding = 0, 0
		addHeat(p, m, cm, func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) })
		w := vg.Length(len(cols))*2.6*vg.Centimeter + 9*vg.Centimeter
		h := vg.Length(len(formats))*2*vg.Centimeter + 4*vg.Centimeter
		figs = append(figs, &figure{
			name:    "routing-" + fileSafe(s.Key()),
			title:   p.Title.Text,
			caption: fmt.Sprintf("Share of outputs of %s that follow each behaviour, per prompt format; rows sum to 100%% when every output is classified.", s.Key()),
			w:       w, h: h,
			draw: withColorBar(p, cm, "share of outputs"),
		})
	}
	return figs, notes
}

// paretoPoints places each system with both metrics at (BLEU on bleuTask,
// median response length on lengthTask).
func paretoPoints(d *dataset, bleuTask, lengthTask string) []sweep.Point {
	var pts []sweep.Point
	for _, s := range d.systems {
		b, ok1 := metric(d.get(s, bleuTask), "bleu")
		l, ok2 := metric(d.get(s, lengthTask), "length_words")
		if ok1 && ok2 {
			pts = append(pts, sweep.Point{Label: s.Key(), X: b, Y: l})
		}
	}
	return pts
}

// paretoChart draws every system as a point of (BLEU, chat length) and
// highlights and connects the Pareto front (both higher is better).
func paretoChart(pts, front []sweep.Point, bleuTask, lengthTask string) *figure {
	p := newPlot(fmt.Sprintf("Translation quality against chat length (%s, %s)", bleuTask, lengthTask))
	p.X.Label.Text = fmt.Sprintf("BLEU on %s (0–100)", bleuTask)
	p.Y.Label.Text = fmt.Sprintf("median response length on %s (words)", lengthTask)
	p.Add(plotter.NewGrid())

	all := make(plotter.XYs, len(pts))
	for i, q := range pts {
		all[i] = plotter.XY{X: q.X, Y: q.Y}
	}
	sc, _ := plotter.NewScatter(all)
	sc.GlyphStyle.Color = color.NRGBA{0x80, 0x80, 0x80, 0xff}
	sc.GlyphStyle.Radius = vg.Points(2.5)
	sc.GlyphStyle.Shape = draw.CircleGlyph{}
	p.Add(sc)
	p.Legend.Add(fmt.Sprintf("system (%d)", len(pts)), sc)

	fr := make(plotter.XYs, len(front))
	for i, q := range front {
		fr[i] = plotter.XY{X: q.X, Y: q.Y}
	}
	line, points, _ := plotter.NewLinePoints(fr)
	line.Color = series[1]
	line.Width = vg.Points(1.5)
	points.Color = series[1]
	points.Radius = vg.Points(4)
	points.Shape = draw.CircleGlyph{}
	p.Add(line, points)
	p.Legend.Add(fmt.Sprintf("Pareto front (%d)", len(front)), line, points)
	p.Legend.Top = true // beyond the front, the top right is empty

	if len(front) <= 12 {
		// One label per place: systems at the same point share it.
		var at plotter.XYs
		var labels []string
		for i, q := range front {
			if i > 0 && fr[i] == fr[i-1] {
				labels[len(labels)-1] += " = " + q.Label
				continue
			}
			at = append(at, fr[i])
			labels = append(labels, q.Label)
		}
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: at, Labels: labels})
		if err == nil {
			for i := range l.TextStyle {
				l.TextStyle[i].Font.Size = vg.Points(7)
				l.TextStyle[i].Color = series[1]
			}
			l.Offset = vg.Point{X: vg.Points(5), Y: vg.Points(3)}
			p.Add(l)
		}
	}
	padRange(&p.X, 0.05)
	padRange(&p.Y, 0.08)
	return plotFigure("pareto-"+fileSafe(lengthTask),
		fmt.Sprintf("Each grey point is one system: its corpus BLEU on %s against its median response length on %s. The red points are the Pareto front: no other system is better on both (higher is better for both).", bleuTask, lengthTask),
		p, normal, tall)
}

// mergeTimeChart draws the SVD merge time against rank, log-log, for the
// low-rank method and the full-matrix SVD.
func mergeTimeChart(ms []MergeTiming) (*figure, error) {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b MergeTiming) int { return a.Rank - b.Rank })
	var low, full plotter.XYs
	modules := map[int]bool{}
	for _, m := range ms {
		if m.Rank <= 0 {
			continue
		}
		modules[m.Modules] = true
		if m.LowRankSeconds > 0 {
			low = append(low, plotter.XY{X: float64(m.Rank), Y: m.LowRankSeconds})
		}
		if m.FullSeconds > 0 {
			full = append(full, plotter.XY{X: float64(m.Rank), Y: m.FullSeconds})
		}
	}
	if len(low)+len(full) == 0 {
		return nil, fmt.Errorf("no merge timing with a positive rank and time")
	}
	p := newPlot("SVD merge time against rank")
	p.X.Label.Text = "rank of each adapter (log scale)"
	p.Y.Label.Text = "merge time (s, log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker = rankTicks(ms)
	p.Y.Tick.Marker = logTicks{}
	p.Add(plotter.NewGrid())
	for i, s := range []struct {
		name string
		xys  plotter.XYs
	}{{"low-rank (QR + small SVD)", low}, {"full-matrix SVD", full}} {
		if len(s.xys) == 0 {
			continue
		}
		l, pt, _ := plotter.NewLinePoints(s.xys)
		l.Color, pt.Color = seriesColor(i), seriesColor(i)
		l.Width = vg.Points(1.5)
		pt.Shape = draw.CircleGlyph{}
		pt.Radius = vg.Points(3)
		p.Add(l, pt)
		p.Legend.Add(s.name, l, pt)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	padLogRange(&p.Y, len(low)/max(1, len(low))+len(full)/max(1, len(full)))
	padLogRange(&p.X, 0)
	mods := make([]string, 0, len(modules))
	for m := range modules {
		mods = append(mods, strconv.Itoa(m))
	}
	sort.Strings(mods)
	return logYFigure("merge-time",
		fmt.Sprintf("Wall time to merge two adapters with the SVD combination, over %s modules, against their rank.", strings.Join(mods, "/")),
		p, normal, tall), nil
}

// throughputChart draws prefill and decode tokens/s against batch size, one
// colour per device/card, prefill solid and decode dashed.
func throughputChart(ts []Throughput) (*figure, error) {
	byDev := map[string][]Throughput{}
	var devs []string
	batches := map[int]bool{}
	names, _ := seriesNames(ts)
	for i, t := range ts {
		if t.Batch <= 0 {
			continue
		}
		k := names[i]
		if byDev[k] == nil {
			devs = append(devs, k)
		}
		byDev[k] = append(byDev[k], t)
		batches[t.Batch] = true
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("no throughput record with a positive batch size")
	}
	p := newPlot("Generation throughput against batch size")
	p.X.Label.Text = "batch size (sequences, log scale)"
	p.Y.Label.Text = "throughput (tokens/s, log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var bt []int
	for b := range batches {
		bt = append(bt, b)
	}
	sort.Ints(bt)
	ticks := plot.ConstantTicks{}
	for _, b := range bt {
		ticks = append(ticks, plot.Tick{Value: float64(b), Label: strconv.Itoa(b)})
	}
	p.X.Tick.Marker = ticks
	p.Y.Tick.Marker = logTicks{}
	p.Add(plotter.NewGrid())
	drawn := 0
	for i, k := range devs {
		rows := byDev[k]
		slices.SortFunc(rows, func(a, b Throughput) int { return a.Batch - b.Batch })
		name := k
		for _, ph := range []struct {
			name string
			get  func(Throughput) float64
		}{
			{"prefill", func(t Throughput) float64 { return t.PrefillTokS }},
			{"decode", func(t Throughput) float64 { return t.DecodeTokS }},
		} {
			phase, get := ph.name, ph.get
			var xys plotter.XYs
			for _, t := range rows {
				if v := get(t); v > 0 {
					xys = append(xys, plotter.XY{X: float64(t.Batch), Y: v})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, pt, _ := plotter.NewLinePoints(xys)
			l.Color, pt.Color = seriesColor(i), seriesColor(i)
			l.Width = vg.Points(1.5)
			pt.Radius = vg.Points(3)
			if phase == "decode" {
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
				pt.Shape = draw.TriangleGlyph{}
			} else {
				pt.Shape = draw.CircleGlyph{}
			}
			p.Add(l, pt)
			p.Legend.Add(name+", "+phase, l, pt)
			drawn++
		}
	}
	if drawn == 0 {
		return nil, fmt.Errorf("no throughput record with a positive tokens/s")
	}
	p.Legend.Top = true
	p.Legend.Left = true
	padLogRange(&p.Y, drawn)
	padLogRange(&p.X, 0)
	return logYFigure("throughput",
		"Generated tokens per second against the number of sequences in a batch: prefill (the prompt, solid) and decode (new tokens, dashed), per device.",
		p, normal, tall), nil
}

// rankTicks labels the ranks present.
func rankTicks(ms []MergeTiming) plot.ConstantTicks {
	var t plot.ConstantTicks
	seen := map[int]bool{}
	for _, m := range ms {
		if m.Rank > 0 && !seen[m.Rank] {
			seen[m.Rank] = true
			t = append(t, plot.Tick{Value: float64(m.Rank), Label: strconv.Itoa(m.Rank)})
		}
	}
	return t
}

// logYFigure wraps a plot with a log-scale Y axis. gonum places the glyph
// box of the Y label at the arithmetic middle of the range, which on a log
// axis is near the top, and then shrinks the plot to make room for it; so the
// label is drawn here instead, centred on the canvas like gonum draws it.
func logYFigure(name, caption string, p *plot.Plot, w, h vg.Length) *figure {
	label := p.Y.Label.Text
	p.Y.Label.Text = ""
	sty := p.Y.Label.TextStyle
	f := plotFigure(name, caption, p, w, h)
	f.draw = func(dc draw.Canvas) {
		if p.BackgroundColor != nil {
			dc.SetColor(p.BackgroundColor)
			dc.Fill(dc.Rectangle.Path())
		}
		rot := sty
		rot.Rotation += math.Pi / 2
		descent := sty.FontExtents().Descent
		x := dc.Min.X + sty.Height(label)
		dc.FillText(rot, vg.Point{X: x - descent, Y: dc.Center().Y}, label)
		p.Draw(draw.Crop(dc, sty.Height(label)+p.Y.Label.Padding, 0, 0, 0))
	}
	return f
}

// logTicks are plot.LogTicks kept within the axis range (gonum's reach to
// the next power of ten, and its label there shrinks the plot), with the
// 2s and 5s labelled too when fewer than two powers of ten are in range.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	var in []plot.Tick
	labelled := 0
	for _, t := range (plot.LogTicks{Prec: -1}).Ticks(min, max) {
		if t.Value >= min*(1-1e-9) && t.Value <= max*(1+1e-9) {
			in = append(in, t)
			if t.Label != "" {
				labelled++
			}
		}
	}
	if labelled < 2 {
		for i, t := range in {
			m := t.Value / math.Pow10(int(math.Floor(math.Log10(t.Value)+1e-9)))
			if math.Abs(m-2) < 1e-6 || math.Abs(m-5) < 1e-6 {
				in[i].Label = strconv.FormatFloat(t.Value, 'g', -1, 64)
			}
		}
	}
	return in
}

// padRange widens an axis by frac of its span on each side, so that points
// and their labels do not sit on the frame.
func padRange(a *plot.Axis, frac float64) {
	span := a.Max - a.Min
	if span == 0 {
		span = math.Max(1, math.Abs(a.Max))
	}
	a.Min -= frac * span
	a.Max += frac * span
}

// padLogRange widens a log axis so that its points do not touch the frame,
// it spans at least a factor of 4, and, for a vertical axis with a legend of
// legendRows entries at the top, the top part is left free for the legend.
func padLogRange(a *plot.Axis, legendRows int) {
	lo, hi := a.Min/1.3, a.Max*1.3
	if hi/lo < 4 {
		mid := math.Sqrt(lo * hi)
		lo, hi = mid/2, mid*2
	}
	// About 6% of the height per legend row.
	frac := 0.06 * float64(legendRows)
	hi *= math.Pow(hi/lo, frac/(1-frac))
	a.Min, a.Max = lo, hi
}

func uniqueSorted(xs []float64) []float64 {
	slices.Sort(xs)
	return slices.Compact(xs)
}

func mapStrings(xs []float64, f func(float64) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// fileSafe turns a system key or task name into a file-name part.
func fileSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	return strings.Trim(b.String(), "_")
}
