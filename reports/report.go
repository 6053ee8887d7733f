package reports

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"loramix/suites/results"
	"loramix/suites/sweep"
)

// Input is what a report is built from. Every field may be empty; a chart
// whose inputs are missing is skipped with a note in the report.
type Input struct {
	Results     []*results.File
	ResultPaths []string // where each of Results came from, for the report
	Merge       []MergeTiming
	Throughput  []Throughput
	// BLEUTask and LengthTask pick the translation and chat tasks of the
	// Pareto chart; empty means the first task with BLEU, and a chart for
	// each other task with response lengths.
	BLEUTask, LengthTask string
	// Now stamps the report; zero means time.Now().
	Now time.Time
}

// Chart is one chart written.
type Chart struct {
	Name    string // file stem: Name.png and Name.svg
	Title   string
	Caption string
	png     []byte
}

// Report says what Build wrote.
type Report struct {
	Dir      string
	Charts   []Chart
	Notes    []string // a note per chart not drawn, or drawn in part, with the reason
	HTML     string   // path of report.html
	Markdown string   // path of report.md
	tables   []table
	in       Input
}

// Build draws every chart the input supports into dir (created if needed)
// as PNG and SVG, then writes dir/report.html (self-contained: images
// embedded as data: URIs) and dir/report.md (tables, versions,
// configuration). All files are written atomically.
func Build(in Input, dir string) (*Report, error) {
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := newDataset(in.Results)
	rep := &Report{Dir: dir, in: in}
	bleuTask := d.bleuTask(in.BLEUTask)
	lengthTasks := d.lengthTasks(in.LengthTask, bleuTask)

	var figs []*figure
	add := func(fs []*figure, notes []string, absent string) {
		figs = append(figs, fs...)
		rep.Notes = append(rep.Notes, notes...)
		if len(fs) == 0 && len(notes) == 0 {
			rep.Notes = append(rep.Notes, absent)
		}
	}

	if bleuTask == "" {
		add(nil, nil, "BLEU heatmaps: no record has a bleu metric")
	} else {
		fs, notes := bleuHeatmaps(d, bleuTask)
		add(fs, notes, fmt.Sprintf("BLEU heatmaps: no combination of two adapters was evaluated on %s", bleuTask))
	}
	// One Pareto chart per chat task; the first one's front picks the
	// systems shown one by one.
	type pareto struct {
		task       string
		pts, front []sweep.Point
	}
	var paretos []pareto
	for _, lt := range lengthTasks {
		pts := paretoPoints(d, bleuTask, lt)
		if len(pts) >= 2 {
			paretos = append(paretos, pareto{lt, pts, sweep.ParetoFront(pts, true, true)})
		}
	}
	var front []sweep.Point
	if len(paretos) > 0 {
		front = paretos[0].front
	}

	pick, note := pickSystems(d, front, maxBoxes, "response-length box plots")
	fs, notes := lengthBoxes(d, pick)
	if note != "" && len(fs) > 0 {
		notes = append(notes, note)
	}
	add(fs, notes, "response-length box plots: no record has response lengths")
	pick, note = pickSystems(d, front, maxRouting, "routing matrices")
	fs, notes = routingMatrices(d, pick)
	if note != "" && len(fs) > 0 {
		notes = append(notes, note)
	}
	add(fs, notes, "routing matrices: no record has routing shares")

	for _, p := range paretos {
		add([]*figure{paretoChart(p.pts, p.front, bleuTask, p.task)}, nil, "")
	}
	if len(paretos) == 0 {
		add(nil, nil, fmt.Sprintf("Pareto front: needs at least 2 systems with BLEU on a translation task (%q) and response lengths on another task (%q)", bleuTask, strings.Join(lengthTasks, ", ")))
	}

	if len(in.Merge) == 0 {
		add(nil, nil, "merge time against rank: no merge timings given (--bench FILE with MergeTiming records)")
	} else if f, err := mergeTimeChart(in.Merge); err != nil {
		add(nil, []string{"merge time against rank: " + err.Error()}, "")
	} else {
		add([]*figure{f}, nil, "")
	}
	if len(in.Throughput) == 0 {
		add(nil, nil, "tokens/s against batch size: no throughput records given (--bench FILE with Throughput records)")
	} else if f, err := throughputChart(in.Throughput); err != nil {
		add(nil, []string{"tokens/s against batch size: " + err.Error()}, "")
	} else {
		add([]*figure{f}, nil, "")
	}

	for _, f := range figs {
		png, err := f.save(dir)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w", f.name, err)
		}
		rep.Charts = append(rep.Charts, Chart{Name: f.name, Title: f.title, Caption: f.caption, png: png})
	}

	rep.tables = append(rep.tables, resultTables(d)...)
	for _, p := range paretos {
		rep.tables = append(rep.tables, frontTable(p.front, bleuTask, p.task))
	}
	if len(in.Merge) > 0 {
		rep.tables = append(rep.tables, mergeTable(in.Merge))
	}
	if len(in.Throughput) > 0 {
		rep.tables = append(rep.tables, throughputTable(in.Throughput))
	}

	rep.HTML = filepath.Join(dir, "report.html")
	rep.Markdown = filepath.Join(dir, "report.md")
	if err := writeHTML(rep); err != nil {
		return nil, fmt.Errorf("%s: %w", rep.HTML, err)
	}
	if err := writeMarkdown(rep); err != nil {
		return nil, fmt.Errorf("%s: %w", rep.Markdown, err)
	}
	return rep, nil
}

// dataURI embeds a PNG.
func dataURI(png []byte) string {
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
}
