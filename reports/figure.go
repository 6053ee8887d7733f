package reports

import (
	"bytes"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"loramix/engine/safetensors"
)

// figure is one chart ready to render at a size.
type figure struct {
	name    string // file stem, e.g. "bleu-heatmap-svd-fren"
	title   string
	caption string
	w, h    vg.Length
	draw    func(dc draw.Canvas)
}

// plotFigure wraps a single plot.
func plotFigure(name, caption string, p *plot.Plot, w, h vg.Length) *figure {
	return &figure{name: name, title: p.Title.Text, caption: caption, w: w, h: h, draw: p.Draw}
}

// pngDPI is the resolution of the PNG files.
const pngDPI = 150

// render draws f as PNG and SVG.
func (f *figure) render() (pngData, svgData []byte, err error) {
	img := vgimg.NewWith(vgimg.UseWH(f.w, f.h), vgimg.UseDPI(pngDPI), vgimg.UseBackgroundColor(color.White))
	f.draw(draw.New(img))
	var pb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pb); err != nil {
		return nil, nil, err
	}
	svg := vgsvg.New(f.w, f.h)
	dc := draw.New(svg)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	f.draw(dc)
	var sb bytes.Buffer
	if _, err := svg.WriteTo(&sb); err != nil {
		return nil, nil, err
	}
	return pb.Bytes(), sb.Bytes(), nil
}

// save writes DIR/name.png and DIR/name.svg atomically and returns the PNG.
func (f *figure) save(dir string) ([]byte, error) {
	pngData, svgData, err := f.render()
	if err != nil {
		return nil, err
	}
	if err := safetensors.WriteFileAtomic(filepath.Join(dir, f.name+".png"), pngData); err != nil {
		return nil, err
	}
	if err := safetensors.WriteFileAtomic(filepath.Join(dir, f.name+".svg"), svgData); err != nil {
		return nil, err
	}
	return pngData, nil
}
