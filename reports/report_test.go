package reports_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/reports"
	"loramix/suites/results"
	"loramix/suites/sweep"
)

// referenceSystems are the reference experiment's systems: the base, each
// adapter alone, cat [1,1] and four svd weightings, plus a small svd grid.
func referenceSystems() []results.System {
	ad := []string{"fren", "oasst"}
	sys := []results.System{{}, {Adapters: []string{"fren"}}, {Adapters: []string{"oasst"}},
		{Adapters: ad, Method: "cat", Weights: []float64{1, 1}}}
	for _, w := range [][]float64{{0.5, 1}, {0.2, 1}, {1, 0.05}, {1, 0.2}} {
		sys = append(sys, results.System{Adapters: ad, Method: "svd", Weights: w})
	}
	return append(sys, sweep.Points(ad, []string{"svd"}, []float64{0, 0.5, 1})...)
}

// syntheticFile evaluates the systems with the synthetic evaluator.
func syntheticFile(systems []results.System) *results.File {
	eval := sweep.Synthetic([]string{"fren", "oasst"})
	f := &results.File{
		Schema:      results.SchemaVersion,
		Created:     time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		GitRevision: "abc1234",
		Versions:    map[string]string{"loramix": "dev", "go": "go1.26"},
		Config:      map[string]any{"model": "testdata/tiny/llama-mha", "quant": "nf4", "max_new_tokens": 64},
	}
	for _, s := range systems {
		recs, err := eval(context.Background(), s)
		Expect(err).NotTo(HaveOccurred())
		f.Records = append(f.Records, recs...)
	}
	return f
}

func fullInput() reports.Input {
	return reports.Input{
		Results:     []*results.File{syntheticFile(referenceSystems())},
		ResultPaths: []string{"results.json"},
		Merge: []reports.MergeTiming{
			{Rank: 4, LowRankSeconds: 0.05, FullSeconds: 60, Modules: 96},
			{Rank: 16, LowRankSeconds: 0.2, FullSeconds: 62, Modules: 96},
			{Rank: 64, LowRankSeconds: 1.1, FullSeconds: 70, Modules: 96},
		},
		Throughput: []reports.Throughput{
			{Device: "cpu", Card: "2 cores", Batch: 1, PrefillTokS: 300, DecodeTokS: 40},
			{Device: "cpu", Card: "2 cores", Batch: 4, PrefillTokS: 350, DecodeTokS: 120},
			{Device: "cuda", Card: "H100", Batch: 1, PrefillTokS: 9000, DecodeTokS: 400},
			{Device: "cuda", Card: "H100", Batch: 16, PrefillTokS: 40000, DecodeTokS: 3500},
		},
		Now: time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC),
	}
}

// expectPNG checks a file decodes as a PNG of a sensible size with more than
// a handful of colours.
func expectPNG(path string) {
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	img, err := png.Decode(bytes.NewReader(data))
	Expect(err).NotTo(HaveOccurred(), path)
	b := img.Bounds()
	Expect(b.Dx()).To(BeNumerically(">", 400), path)
	Expect(b.Dy()).To(BeNumerically(">", 200), path)
	Expect(distinctColours(img, 4)).To(BeNumerically(">", 5), path)
}

// expectSVG checks a file is well-formed XML with an <svg> root and text.
func expectSVG(path string) {
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root string
	texts := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			Expect(err.Error()).To(Equal("EOF"), path)
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "text" {
				texts++
			}
		}
	}
	Expect(root).To(Equal("svg"), path)
	Expect(texts).To(BeNumerically(">", 5), path)
}

var _ = Describe("Build", func() {
	var dir string
	BeforeEach(func() {
		dir = GinkgoT().TempDir()
		if keep := os.Getenv("LORAMIX_REPORT_KEEP"); keep != "" {
			dir = filepath.Join(keep, CurrentSpecReport().LeafNodeText)
		}
	})

	It("draws every chart from full inputs, as valid PNG and SVG, and embeds them in the HTML", func() {
		rep, err := reports.Build(fullInput(), dir)
		Expect(err).NotTo(HaveOccurred())

		var names []string
		for _, c := range rep.Charts {
			names = append(names, c.Name)
			Expect(c.Title).NotTo(BeEmpty())
			Expect(c.Caption).NotTo(BeEmpty())
		}
		var routing []string
		others := names[:0:0]
		for _, n := range names {
			if strings.HasPrefix(n, "routing-") {
				routing = append(routing, n)
			} else {
				others = append(others, n)
			}
		}
		Expect(others).To(Equal([]string{
			"bleu-heatmap-svd-fren", "lengths-fren", "lengths-oasst", "pareto-oasst", "merge-time", "throughput",
		}))
		Expect(routing).To(HaveLen(12))
		Expect(routing[:4]).To(Equal([]string{"routing-base", "routing-fren", "routing-oasst", "routing-cat_1_1__fren_oasst"}))
		for _, n := range names {
			expectPNG(filepath.Join(dir, n+".png"))
			expectSVG(filepath.Join(dir, n+".svg"))
		}
		Expect(rep.Notes).To(ConsistOf(
			ContainSubstring("BLEU heatmap for cat(fren, oasst): only one weight pair"),
			ContainSubstring("routing matrices: showing 12 of 16 systems"),
		))

		html, err := os.ReadFile(filepath.Join(dir, "report.html"))
		Expect(err).NotTo(HaveOccurred())
		page := string(html)
		By("embedding every chart as a data: URI that decodes to its PNG")
		uris := regexp.MustCompile(`src="data:image/png;base64,([A-Za-z0-9+/=]+)"`).FindAllStringSubmatch(page, -1)
		Expect(uris).To(HaveLen(len(rep.Charts)))
		for i, c := range rep.Charts {
			data, err := base64.StdEncoding.DecodeString(uris[i][1])
			Expect(err).NotTo(HaveOccurred())
			onDisk, _ := os.ReadFile(filepath.Join(dir, c.Name+".png"))
			Expect(data).To(Equal(onDisk), c.Name)
		}
		Expect(page).NotTo(MatchRegexp(`src="[^d]`)) // nothing loaded from elsewhere
		By("holding the tables")
		for _, s := range []string{
			"<h3>Results on fren</h3>", "<h3>Results on oasst</h3>", "<th>bleu ↑</th>",
			"<td>svd[0.5,1](fren,oasst)</td>", "<h3>SVD merge time</h3>", "<td>310.0×</td>", "<td>1200×</td>",
			"<h3>Generation throughput</h3>", "<h3>Pareto front: BLEU on fren against median length on oasst</h3>",
			"<td>config quant</td><td>nf4</td>", "<td>version of go</td><td>go1.26</td>", "<td>git revision</td><td>abc1234</td>",
		} {
			Expect(page).To(ContainSubstring(s))
		}

		md, err := os.ReadFile(filepath.Join(dir, "report.md"))
		Expect(err).NotTo(HaveOccurred())
		for _, c := range rep.Charts {
			Expect(string(md)).To(ContainSubstring("](" + c.Name + ".png)"))
		}
		for _, s := range []string{
			"### Results on fren", "| system | bleu ↑ | chrf ↑ | length_words ↑ | samples | tokens/s | version |",
			"| base |", "| config max_new_tokens | 64 |", "| version of loramix | dev |", "### Generation throughput",
		} {
			Expect(string(md)).To(ContainSubstring(s))
		}
	})

	It("puts the right numbers in the tables", func() {
		in := reports.Input{Results: []*results.File{{Records: []results.Record{{
			System: results.System{Adapters: []string{"fren"}}, Task: "fren", Samples: 3, TaskVersion: "2",
			Metrics: map[string]results.Metric{"bleu": {Value: 31.4159, StdErr: 1.5, CILow: 28.5, CIHigh: 34.25, HigherIsBetter: true}},
			Lengths: []int{4, 10, 6}, Seconds: 2, Tokens: 50,
		}}}}}
		rep, err := reports.Build(in, dir)
		Expect(err).NotTo(HaveOccurred())
		md, _ := os.ReadFile(rep.Markdown)
		Expect(string(md)).To(ContainSubstring("| fren | 31.42 ± 1.50 [28.50, 34.25] | 3 | 6.00 | 25.00 | 2 |"))
	})

	It("skips each chart whose inputs are absent, with a note, and still writes the report", func() {
		in := reports.Input{Results: []*results.File{{Records: []results.Record{{
			System: results.System{}, Task: "oasst",
			Metrics: map[string]results.Metric{"repetition": {Value: 0.1}},
		}}}}}
		rep, err := reports.Build(in, dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Charts).To(BeEmpty())
		Expect(rep.Notes).To(ConsistOf(
			ContainSubstring("BLEU heatmaps: no record has a bleu metric"),
			ContainSubstring("response-length box plots: no record has response lengths"),
			ContainSubstring("routing matrices: no record has routing shares"),
			ContainSubstring("Pareto front: needs at least 2 systems"),
			ContainSubstring("merge time against rank: no merge timings given"),
			ContainSubstring("tokens/s against batch size: no throughput records given"),
		))
		html, _ := os.ReadFile(rep.HTML)
		Expect(string(html)).To(ContainSubstring("No chart could be drawn"))
		Expect(string(html)).To(ContainSubstring("no merge timings given"))
		Expect(string(html)).To(ContainSubstring("<h3>Results on oasst</h3>"))
		entries, _ := os.ReadDir(dir)
		Expect(entries).To(HaveLen(2)) // report.html and report.md, no temp files left
	})

	It("keeps a sweep's grid in the heatmap and leaves scattered search points out, with a note", func() {
		grid := sweep.Points([]string{"fren", "oasst"}, []string{"svd"}, []float64{0, 0.25, 0.5, 0.75, 1})
		for i := 0; i < 15; i++ { // a search's path: distinct weights off the grid
			w := 0.3 + 0.031*float64(i)
			grid = append(grid, results.System{Adapters: []string{"fren", "oasst"}, Method: "svd", Weights: []float64{w, 1 - w/2}})
		}
		rep, err := reports.Build(reports.Input{Results: []*results.File{syntheticFile(grid)}}, dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Notes).To(ContainElement("BLEU heatmap for svd(fren, oasst): 15 points off the main grid (e.g. from a search) are not shown"))
		Expect(rep.Charts[0].Name).To(Equal("bleu-heatmap-svd-fren"))
	})

	It("escapes what comes from the inputs", func() {
		in := fullInput()
		in.Results[0].Config["note"] = "<script>alert(1)</script>"
		rep, err := reports.Build(in, dir)
		Expect(err).NotTo(HaveOccurred())
		html, _ := os.ReadFile(rep.HTML)
		Expect(string(html)).NotTo(ContainSubstring("<script>"))
		Expect(string(html)).To(ContainSubstring("&lt;script&gt;"))
	})
})

var _ = Describe("ReadBench", func() {
	It("reads merge timings and throughputs, as an array or one object", func() {
		dir := GinkgoT().TempDir()
		a := filepath.Join(dir, "a.json")
		Expect(os.WriteFile(a, []byte(`[{"rank":16,"low_rank_seconds":0.2,"full_seconds":62,"modules":96},
			{"device":"cuda","card":"H100","batch":16,"prefill_tok_s":4e4,"decode_tok_s":3500}]`), 0o644)).To(Succeed())
		m, t, err := reports.ReadBench(a)
		Expect(err).NotTo(HaveOccurred())
		Expect(m).To(Equal([]reports.MergeTiming{{Rank: 16, LowRankSeconds: 0.2, FullSeconds: 62, Modules: 96}}))
		Expect(t).To(Equal([]reports.Throughput{{Device: "cuda", Card: "H100", Batch: 16, PrefillTokS: 4e4, DecodeTokS: 3500, Run: "a"}}))

		b := filepath.Join(dir, "b.json")
		Expect(os.WriteFile(b, []byte(`{"device":"cpu","batch":1,"decode_tok_s":12.5}`), 0o644)).To(Succeed())
		_, t, err = reports.ReadBench(b)
		Expect(err).NotTo(HaveOccurred())
		Expect(t).To(HaveLen(1))
	})
	It("reads what loramix bench generate writes: JSON lines, and a report with results", func() {
		dir := GinkgoT().TempDir()
		lines := filepath.Join(dir, "cpu.jsonl")
		Expect(os.WriteFile(lines, []byte(`{"model":"world","device":"cpu","quant":"nf4","threads":2,"batch":1,"prompt_len":16,"new_tokens":32,"prefill_tok_s":900.5,"decode_tok_s":120,"decode_allocs_per_step":0}
{"model":"world","device":"cpu","quant":"nf4","threads":2,"batch":4,"prompt_len":16,"new_tokens":32,"prefill_tok_s":1500,"decode_tok_s":300,"decode_allocs_per_step":0}
`), 0o644)).To(Succeed())
		_, t, err := reports.ReadBench(lines)
		Expect(err).NotTo(HaveOccurred())
		Expect(t).To(Equal([]reports.Throughput{
			{Device: "cpu", Model: "world", Quant: "nf4", Batch: 1, PrefillTokS: 900.5, DecodeTokS: 120, Run: "cpu"},
			{Device: "cpu", Model: "world", Quant: "nf4", Batch: 4, PrefillTokS: 1500, DecodeTokS: 300, Run: "cpu"},
		}))
		report := filepath.Join(dir, "generate-cuda.json")
		Expect(os.WriteFile(report, []byte(`{"benchmark":"generate","device":"NVIDIA H100 80GB HBM3","date":"2026-11-26T18:00:00Z","config":{"Batches":[1,16]},
			"results":[{"device":"NVIDIA H100 80GB HBM3","shape":"llama-2-7b","quant":"nf4","batch":1,"prefill_tok_s":5000,"decode_tok_s":410,"decode_step_ms":2.4},
			           {"device":"NVIDIA H100 80GB HBM3","shape":"llama-2-7b","quant":"nf4","batch":16,"prefill_tok_s":9000,"decode_tok_s":5200,"decode_step_ms":3.1}]}`), 0o644)).To(Succeed())
		_, t, err = reports.ReadBench(report)
		Expect(err).NotTo(HaveOccurred())
		Expect(t).To(HaveLen(2))
		Expect(t[1]).To(Equal(reports.Throughput{Device: "NVIDIA H100 80GB HBM3", Model: "llama-2-7b", Quant: "nf4", Batch: 16,
			PrefillTokS: 9000, DecodeTokS: 5200, Run: "generate-cuda"}))
	})

	It("tells two runs of one card apart in the throughput chart and table", func() {
		dir := GinkgoT().TempDir()
		var all []reports.Throughput
		for _, v := range []struct {
			name   string
			decode float64
		}{{"v9", 328}, {"v10", 329.5}} {
			p := filepath.Join(dir, "generate-cuda-h100-"+v.name+".json") // the common "generate-cuda-h100-" is left out
			Expect(os.WriteFile(p, []byte(fmt.Sprintf(`{"results":[
				{"device":"H100","shape":"llama-2-7b","quant":"nf4","batch":1,"prefill_tok_s":4600,"decode_tok_s":%g},
				{"device":"H100","shape":"llama-2-7b","quant":"nf4","batch":16,"prefill_tok_s":17400,"decode_tok_s":3280}]}`, v.decode)), 0o644)).To(Succeed())
			_, t, err := reports.ReadBench(p)
			Expect(err).NotTo(HaveOccurred())
			all = append(all, t...)
		}
		all = append(all, reports.Throughput{Device: "cpu", Batch: 1, DecodeTokS: 12, Run: "cpu"}) // one run: no label
		rep, err := reports.Build(reports.Input{Throughput: all, Now: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)}, filepath.Join(dir, "out"))
		Expect(err).NotTo(HaveOccurred())
		svg, err := os.ReadFile(filepath.Join(dir, "out", "throughput.svg"))
		Expect(err).NotTo(HaveOccurred())
		Expect(string(svg)).To(And(ContainSubstring("H100 llama-2-7b nf4 (v9), decode"), ContainSubstring("H100 llama-2-7b nf4 (v10), decode"),
			ContainSubstring("cpu, decode"), Not(ContainSubstring("(cpu)"))))
		md, err := os.ReadFile(rep.Markdown)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(md)).To(And(ContainSubstring("| H100 |  | llama-2-7b | nf4 | v10 | 1 | 4600 | 329.5 |"),
			ContainSubstring("| H100 |  | llama-2-7b | nf4 | v9 | 1 | 4600 | 328.0 |"), ContainSubstring("| cpu |  |  |  |  | 1 | 0 | 12.00 |")))
	})

	It("names the file and entry it cannot read", func() {
		dir := GinkgoT().TempDir()
		c := filepath.Join(dir, "c.json")
		Expect(os.WriteFile(c, []byte(`[{"rank":1,"low_rank_seconds":1},{"what":1}]`), 0o644)).To(Succeed())
		_, _, err := reports.ReadBench(c)
		Expect(err).To(MatchError(And(ContainSubstring("c.json"), ContainSubstring("record 1 is neither"))))
		Expect(os.WriteFile(c, []byte(`not json`), 0o644)).To(Succeed())
		_, _, err = reports.ReadBench(c)
		Expect(err).To(MatchError(ContainSubstring("c.json: want JSON objects")))
		_, _, err = reports.ReadBench(filepath.Join(dir, "missing.json"))
		Expect(err).To(HaveOccurred())
	})
})
