package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/metrics"
)

// golden mirrors testdata/sacrebleu_golden.json, written by
// reference/sacrebleu_golden.py with sacreBLEU 2.6.0.
type golden struct {
	Version  string `json:"sacrebleu_version"`
	Pairs    []struct{ Hyp, Ref, Ref2 string }
	TokHyp   []string `json:"tok13a_hyp"`
	TokRef   []string `json:"tok13a_ref"`
	Sentence []struct {
		BLEU    goldenBLEU `json:"bleu"`
		CHRF    float64    `json:"chrf"`
		CHRFPP  float64    `json:"chrfpp"`
		BLEU2   goldenBLEU `json:"bleu_2refs"`
		CHRF2   float64    `json:"chrf_2refs"`
		CHRFPP2 float64    `json:"chrfpp_2refs"`
		APIBLEU float64    `json:"sentence_bleu"`
		APICHRF float64    `json:"sentence_chrf"`
	}
	SentenceSigs map[string]string       `json:"sentence_signatures"`
	Corpus       map[string]goldenCorpus `json:"corpus"`
	HypsB        []string                `json:"hyps_b"`
	CorpusB      goldenCorpus            `json:"corpus_b"`
	Bootstrap    struct {
		BLEUSingle goldenCI `json:"bleu_single"`
		CHRFSingle goldenCI `json:"chrf_single"`
		Paired     struct {
			BLEU  []goldenCI `json:"BLEU"`
			CHRF  []goldenCI `json:"chrF2"`
			SelfP float64    `json:"BLEU_self_p"`
		} `json:"paired"`
	}
	CLIIndex []int `json:"cli_index"`
	CLI      []struct {
		Args   []string
		Stdout string
		RC     int
	}
}

type goldenBLEU struct {
	Score      float64
	Counts     []int
	Totals     []int
	Precisions []float64
	BP         float64
	SysLen     int `json:"sys_len"`
	RefLen     int `json:"ref_len"`
	Ratio      float64
	Format     string
	FormatW1   string `json:"format_w1"`
	Signature  string
	FormatSig  string `json:"format_sig"`
}

type goldenCHRF struct {
	Score     float64
	Name      string
	Format    string
	Signature string
}

type goldenCorpus struct {
	N      int
	BLEU   goldenBLEU `json:"bleu"`
	CHRF   goldenCHRF `json:"chrf"`
	CHRFPP goldenCHRF `json:"chrfpp"`
}

type goldenCI struct {
	Score, Mean, CI float64
	PValue          *float64 `json:"p_value"`
	Format          string
}

func loadGolden() *golden {
	data, err := os.ReadFile("testdata/sacrebleu_golden.json")
	Expect(err).NotTo(HaveOccurred())
	var g golden
	Expect(json.Unmarshal(data, &g)).To(Succeed())
	Expect(g.Version).To(Equal("2.6.0"))
	Expect(len(g.Pairs)).To(BeNumerically(">", 300))
	return &g
}

const tol = 1e-9

func expectBLEU(got metrics.BLEUScore, want goldenBLEU, what string) {
	GinkgoHelper()
	Expect(got.Score).To(BeNumerically("~", want.Score, tol), what+" score")
	Expect(got.Counts[:]).To(Equal(want.Counts), what+" counts")
	Expect(got.Totals[:]).To(Equal(want.Totals), what+" totals")
	for i := range want.Precisions {
		Expect(got.Precisions[i]).To(BeNumerically("~", want.Precisions[i], tol), fmt.Sprintf("%s precision %d", what, i+1))
	}
	Expect(got.BP).To(BeNumerically("~", want.BP, tol), what+" bp")
	Expect(got.SysLen).To(Equal(want.SysLen), what+" sys_len")
	Expect(got.RefLen).To(Equal(want.RefLen), what+" ref_len")
	Expect(got.Ratio()).To(BeNumerically("~", want.Ratio, tol), what+" ratio")
	Expect(got.String()).To(Equal(want.Format), what+" format")
	Expect(got.Format(1)).To(Equal(want.FormatW1), what+" format width 1")
}

var _ = Describe("sacreBLEU parity", Label("Metric:bleu", "Metric:chrf"), func() {
	var g *golden
	BeforeEach(func() { g = loadGolden() })

	It("tokenizes every segment exactly like 13a", func() {
		for i, p := range g.Pairs {
			Expect(metrics.Tokenize13a(p.Hyp)).To(Equal(g.TokHyp[i]), "hyp %d %q", i, p.Hyp)
			Expect(metrics.Tokenize13a(p.Ref)).To(Equal(g.TokRef[i]), "ref %d %q", i, p.Ref)
		}
	})

	It("matches sentence BLEU for every pair, with one and two references", func() {
		for i, p := range g.Pairs {
			what := fmt.Sprintf("pair %d (%q vs %q)", i, p.Hyp, p.Ref)
			s := metrics.SentenceBLEU(p.Hyp, p.Ref)
			expectBLEU(s, g.Sentence[i].BLEU, what)
			Expect(s.Score).To(BeNumerically("~", g.Sentence[i].APIBLEU, tol))
			Expect(s.Signature()).To(Equal(g.SentenceSigs["bleu"]))
			expectBLEU(metrics.SentenceBLEU(p.Hyp, p.Ref, p.Ref2), g.Sentence[i].BLEU2, what+" 2 refs")
		}
		Expect(metrics.SentenceBLEU("a", "a", "b").Signature()).To(Equal(g.SentenceSigs["bleu_2refs"]))
	})

	It("matches sentence chrF and chrF++ for every pair, with one and two references", func() {
		for i, p := range g.Pairs {
			what := fmt.Sprintf("pair %d (%q vs %q)", i, p.Hyp, p.Ref)
			Expect(metrics.SentenceCHRF(p.Hyp, p.Ref).Score).To(BeNumerically("~", g.Sentence[i].CHRF, tol), what)
			Expect(metrics.SentenceCHRF(p.Hyp, p.Ref).Score).To(BeNumerically("~", g.Sentence[i].APICHRF, tol), what)
			Expect(metrics.ChrFPlusPlus.Sentence(p.Hyp, p.Ref).Score).To(BeNumerically("~", g.Sentence[i].CHRFPP, tol), what)
			Expect(metrics.SentenceCHRF(p.Hyp, p.Ref, p.Ref2).Score).To(BeNumerically("~", g.Sentence[i].CHRF2, tol), what)
			Expect(metrics.ChrFPlusPlus.Sentence(p.Hyp, p.Ref, p.Ref2).Score).To(BeNumerically("~", g.Sentence[i].CHRFPP2, tol), what)
		}
		Expect(metrics.SentenceCHRF("a", "a").Signature()).To(Equal(g.SentenceSigs["chrf"]))
		Expect(metrics.ChrFPlusPlus.Sentence("a", "a").Signature()).To(Equal(g.SentenceSigs["chrfpp"]))
	})

	DescribeTable("matches corpus BLEU, chrF and chrF++",
		func(name string, pick func(g *golden) (hyps []string, refs [][]string)) {
			want := g.Corpus[name]
			hyps, refs := pick(g)
			Expect(hyps).To(HaveLen(want.N))

			b, err := metrics.CorpusBLEU(hyps, refs...)
			Expect(err).NotTo(HaveOccurred())
			expectBLEU(b, want.BLEU, name)
			Expect(b.Signature()).To(Equal(want.BLEU.Signature))
			Expect(metrics.FormatScore(b.Line(), 2)).To(Equal(want.BLEU.FormatSig))

			c, err := metrics.CorpusCHRF(hyps, refs...)
			Expect(err).NotTo(HaveOccurred())
			Expect(c.Score).To(BeNumerically("~", want.CHRF.Score, tol))
			Expect(c.Name()).To(Equal(want.CHRF.Name))
			Expect(c.String()).To(Equal(want.CHRF.Format))
			Expect(c.Signature()).To(Equal(want.CHRF.Signature))

			cpp, err := metrics.ChrFPlusPlus.Corpus(hyps, refs)
			Expect(err).NotTo(HaveOccurred())
			Expect(cpp.Score).To(BeNumerically("~", want.CHRFPP.Score, tol))
			Expect(cpp.Name()).To(Equal(want.CHRFPP.Name))
			Expect(cpp.String()).To(Equal(want.CHRFPP.Format))
			Expect(cpp.Signature()).To(Equal(want.CHRFPP.Signature))
		},
		Entry("all pairs", "all", func(g *golden) ([]string, [][]string) { return hyps(g, nil), [][]string{refs(g, nil)} }),
		Entry("the first 100", "first100", func(g *golden) ([]string, [][]string) {
			return hyps(g, nil)[:100], [][]string{refs(g, nil)[:100]}
		}),
		Entry("every third", "every3", func(g *golden) ([]string, [][]string) {
			keep := func(i int) bool { return i%3 == 0 }
			return hyps(g, keep), [][]string{refs(g, keep)}
		}),
		Entry("generated pairs only", "generated", func(g *golden) ([]string, [][]string) {
			n := len(g.Pairs) - g.Corpus["generated"].N
			return hyps(g, nil)[n:], [][]string{refs(g, nil)[n:]}
		}),
		Entry("two references", "tworefs", func(g *golden) ([]string, [][]string) {
			r2 := make([]string, len(g.Pairs))
			for i, p := range g.Pairs {
				r2[i] = p.Ref2
			}
			return hyps(g, nil), [][]string{refs(g, nil), r2}
		}),
		Entry("empty hypotheses", "empty_hyps", func(*golden) ([]string, [][]string) {
			return []string{"", ""}, [][]string{{"a b", "c"}}
		}),
		Entry("empty hypothesis and reference", "empty_both", func(*golden) ([]string, [][]string) {
			return []string{""}, [][]string{{""}}
		}),
		Entry("empty reference", "empty_ref", func(*golden) ([]string, [][]string) {
			return []string{"a b c"}, [][]string{{""}}
		}),
		Entry("identical", "identical", func(g *golden) ([]string, [][]string) {
			n := len(g.Pairs) - g.Corpus["generated"].N
			r := refs(g, nil)[n : n+40]
			return r, [][]string{r}
		}),
	)

	It("matches corpus scores of a second system", func() {
		b, err := metrics.CorpusBLEU(g.HypsB, refs(g, nil))
		Expect(err).NotTo(HaveOccurred())
		expectBLEU(b, g.CorpusB.BLEU, "system b")
		c, err := metrics.CorpusCHRF(g.HypsB, refs(g, nil))
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Score).To(BeNumerically("~", g.CorpusB.CHRF.Score, tol))
	})

	It("prints what the sacrebleu command line prints", func() {
		// The command line read files made of the pairs without newlines.
		var hypFile, refFile, ref2File, hypBFile strings.Builder
		for _, i := range g.CLIIndex {
			hypFile.WriteString(g.Pairs[i].Hyp + "\n")
			refFile.WriteString(g.Pairs[i].Ref + "\n")
			ref2File.WriteString(g.Pairs[i].Ref2 + "\n")
			hypBFile.WriteString(g.HypsB[i] + "\n")
		}
		files := map[string][]string{
			"hyp.txt":   metrics.SplitLines([]byte(hypFile.String())),
			"ref.txt":   metrics.SplitLines([]byte(refFile.String())),
			"ref2.txt":  metrics.SplitLines([]byte(ref2File.String())),
			"hyp_b.txt": metrics.SplitLines([]byte(hypBFile.String())),
		}
		Expect(files["hyp.txt"]).To(HaveLen(len(g.CLIIndex)))
		checked := 0
		for _, run := range g.CLI {
			o, refNames, hypNames, comparable := parseSacrebleuArgs(run.Args)
			if !comparable {
				continue // bootstrap resamples come from numpy's generator; see the bootstrap specs
			}
			Expect(run.RC).To(Equal(0))
			var refStreams [][]string
			for _, n := range refNames {
				refStreams = append(refStreams, files[n])
			}
			got, err := metrics.Report(files[hypNames[0]], refStreams, o)
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(Equal(run.Stdout), "sacrebleu %s", strings.Join(run.Args, " "))
			checked++
		}
		Expect(checked).To(Equal(10))
	})
})

// parseSacrebleuArgs turns the recorded sacrebleu arguments into options.
func parseSacrebleuArgs(args []string) (o metrics.ReportOptions, refs, hyps []string, comparable bool) {
	o.Width, o.JSON = 1, true
	var names []string
	chrf := metrics.ChrF
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-i":
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				hyps = append(hyps, args[i])
			}
		case "-m":
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				names = append(names, args[i])
			}
		case "-f":
			i++
			o.JSON = args[i] == "json"
		case "-w":
			i++
			fmt.Sscan(args[i], &o.Width)
		case "--chrf-word-order":
			i++
			chrf = metrics.ChrFPlusPlus
		case "-sl":
			o.Sentence = true
		case "-b":
			o.ScoreOnly = true
		case "--confidence", "--paired-bs":
			return o, nil, nil, false
		default:
			refs = append(refs, a)
		}
	}
	for _, n := range names {
		if n == "bleu" {
			o.Metrics = append(o.Metrics, metrics.BLEU{})
		} else {
			o.Metrics = append(o.Metrics, chrf)
		}
	}
	return o, refs, hyps, true
}

func hyps(g *golden, keep func(int) bool) []string {
	var out []string
	for i, p := range g.Pairs {
		if keep == nil || keep(i) {
			out = append(out, p.Hyp)
		}
	}
	return out
}

func refs(g *golden, keep func(int) bool) []string {
	var out []string
	for i, p := range g.Pairs {
		if keep == nil || keep(i) {
			out = append(out, p.Ref)
		}
	}
	return out
}
