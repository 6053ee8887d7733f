package reports

import (
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// matrix is a heat-map grid on integer coordinates: cell (r, c) is centred
// at x = c, y = r. NaN marks an empty cell.
type matrix struct {
	z [][]float64 // (rows, cols)
}

func newMatrix(rows, cols int) matrix {
	z := make([][]float64, rows)
	for r := range z {
		z[r] = make([]float64, cols)
		for c := range z[r] {
			z[r][c] = math.NaN()
		}
	}
	return matrix{z}
}

func (m matrix) Dims() (c, r int)   { return len(m.z[0]), len(m.z) }
func (m matrix) Z(c, r int) float64 { return m.z[r][c] }
func (m matrix) X(c int) float64    { return float64(c) }
func (m matrix) Y(r int) float64    { return float64(r) }
func (m matrix) finite() (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, row := range m.z {
		for _, v := range row {
			if !math.IsNaN(v) {
				lo, hi, ok = math.Min(lo, v), math.Max(hi, v), true
			}
		}
	}
	return lo, hi, ok
}

// viridis returns a colour map close to matplotlib's viridis (dark purple
// to yellow, luminance rising linearly) over [lo, hi].
func viridis(lo, hi float64) palette.ColorMap {
	cm, err := moreland.NewLuminance([]color.Color{
		color.NRGBA{0x44, 0x01, 0x54, 0xff},
		color.NRGBA{0x3b, 0x52, 0x8b, 0xff},
		color.NRGBA{0x21, 0x91, 0x8c, 0xff},
		color.NRGBA{0x5e, 0xc9, 0x62, 0xff},
		color.NRGBA{0xfd, 0xe7, 0x25, 0xff},
	})
	if err != nil {
		panic("reports: viridis controls: " + err.Error())
	}
	if hi <= lo { // a flat grid still needs a range
		hi = lo + 1
	}
	cm.SetMin(lo)
	cm.SetMax(hi)
	return cm
}

// addHeat adds m to p as a heat map coloured by cm, with each cell's value
// written in it by format (in black or white, whichever reads better).
func addHeat(p *plot.Plot, m matrix, cm palette.ColorMap, format func(float64) string) {
	const levels = 256
	h := plotter.NewHeatMap(m, cm.Palette(levels))
	h.Min, h.Max = cm.Min(), cm.Max()
	h.NaN = color.NRGBA{0xee, 0xee, 0xee, 0xff}
	p.Add(h)

	var xys plotter.XYs
	var labels []string
	var styles []text.Style
	base := text.Style{
		Font:    plot.DefaultFont,
		Handler: plot.DefaultTextHandler,
		XAlign:  draw.XCenter,
		YAlign:  draw.YCenter,
	}
	base.Font.Size = vg.Points(10)
	for r, row := range m.z {
		for c, v := range row {
			if math.IsNaN(v) {
				continue
			}
			xys = append(xys, plotter.XY{X: float64(c), Y: float64(r)})
			labels = append(labels, format(v))
			st := base
			st.Color = color.Black
			if col, err := cm.At(math.Min(math.Max(v, cm.Min()), cm.Max())); err == nil && luminance(col) < 0.5 {
				st.Color = color.White
			}
			styles = append(styles, st)
		}
	}
	if len(xys) == 0 {
		return
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		panic("reports: " + err.Error()) // the lengths match by construction
	}
	l.TextStyle = styles
	p.Add(l)
}

// colorBar draws a colour map as a column of overlapping vector bands.
// (plotter.ColorBar is a raster image, which SVG viewers squeeze to one
// pixel wide, and a heat map of cells shows seams between them.)
type colorBar struct{ cm palette.ColorMap }

const barBands = 128

func (b colorBar) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	lo, hi := b.cm.Min(), b.cm.Max()
	x0, x1 := trX(0), trX(1)
	for i := range barBands {
		v0 := lo + (hi-lo)*float64(i)/barBands
		v1 := lo + (hi-lo)*float64(i+1)/barBands
		col, err := b.cm.At(math.Min((v0+v1)/2, hi))
		if err != nil {
			continue
		}
		top := trY(v1)
		if i < barBands-1 {
			top += vg.Points(0.5) // overlap the next band: no seam
		}
		var path vg.Path
		path.Move(vg.Point{X: x0, Y: trY(v0)})
		path.Line(vg.Point{X: x1, Y: trY(v0)})
		path.Line(vg.Point{X: x1, Y: top})
		path.Line(vg.Point{X: x0, Y: top})
		path.Close()
		c.SetColor(col)
		c.Fill(path)
	}
}

func (b colorBar) DataRange() (xmin, xmax, ymin, ymax float64) {
	return 0, 1, b.cm.Min(), b.cm.Max()
}

func luminance(c color.Color) float64 {
	r, g, b, _ := c.RGBA()
	return (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(b)) / 0xffff
}

// indexTicks labels the integer positions 0..len(names)-1 with names.
func indexTicks(names []string) plot.ConstantTicks {
	t := make(plot.ConstantTicks, len(names))
	for i, n := range names {
		t[i] = plot.Tick{Value: float64(i), Label: n}
	}
	return t
}

// withColorBar draws p with a vertical colour bar for cm, labelled unit, on
// its right.
func withColorBar(p *plot.Plot, cm palette.ColorMap, unit string) func(dc draw.Canvas) {
	return func(dc draw.Canvas) {
		barW := vg.Centimeter * 3
		main := draw.Crop(dc, 0, -barW, 0, 0)
		p.Draw(main)
		data := p.DataCanvas(main)

		bar := plot.New()
		bar.Y.Label.TextStyle.Font.Size = vg.Points(12)
		bar.Add(colorBar{cm})
		bar.HideX()
		bar.Y.Label.Text = unit
		bar.Y.Padding = 0
		bar.BackgroundColor = color.Transparent
		area := dc
		area.Min.X = dc.Max.X - barW + vg.Millimeter*3
		area.Max.X = dc.Max.X - vg.Millimeter*3
		area.Min.Y, area.Max.Y = data.Min.Y, data.Max.Y
		bar.Draw(area)
	}
}
