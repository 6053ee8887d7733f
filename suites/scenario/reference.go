package scenario

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/matchers"
	"loramix/suites/results"
)

// Expectations are the thresholds of the reference experiment. The
// defaults (DefaultExpectations) are issue 8's targets for the in-repo
// world; a user's model may need others.
type Expectations struct {
	// TranslationGain: the translation adapter's BLEU is at least this many
	// points above the base's and the chat adapter's.
	TranslationGain float64
	// ForeignBLEU: the chat adapter alone scores BLEU below this on
	// translation prompts (it does not translate).
	ForeignBLEU float64
	// NearEmptyWords: the translation adapter alone answers chat prompts
	// with a median of at most this many words.
	NearEmptyWords float64
	// CatBLEUShare: cat [1,1] keeps at least this share of the translation
	// adapter's BLEU.
	CatBLEUShare float64
	// CatChatShare: cat [1,1]'s median chat length is at least this share of
	// the chat adapter's (and below the chat adapter's).
	CatChatShare float64
	// LowChatShare: with the chat weight at 0.2, the median chat length is
	// at most this share of the chat adapter's.
	LowChatShare float64
}

// DefaultExpectations are issue 8's targets.
var DefaultExpectations = Expectations{TranslationGain: 12, ForeignBLEU: 2, NearEmptyWords: 3,
	CatBLEUShare: 0.6, CatChatShare: 0.25, LowChatShare: 1.0 / 3}

// GridEntry is one combination of the reference experiment's grid.
type GridEntry struct {
	Method            string
	Translation, Chat float64 // the weights of the two adapters
}

// ReferenceGrid is the reference experiment's grid of combinations.
var ReferenceGrid = []GridEntry{{"cat", 1, 1}, {"svd", 0.5, 1}, {"svd", 0.2, 1}, {"svd", 1, 0.05}, {"svd", 1, 0.2}}

// ReferenceExperiment declares the reference experiment's specs: each
// adapter does its own task and fails the other's; the grid of
// combinations; and the monotone effect of the weights. It runs the same on
// the in-repo world and on Llama-2-7b with real adapters.
func ReferenceExperiment(input func() Input) {
	var w *World
	var in Input
	var r Roles
	rec := func(sys results.System, task string) results.Record {
		GinkgoHelper()
		x, err := w.Record(sys, task)
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry(fmt.Sprintf("%s on %s", sys.Key(), task), summary(x), ReportEntryVisibilityFailureOrVerbose)
		return x
	}
	bleu := func(sys results.System) float64 {
		GinkgoHelper()
		return rec(sys, r.TranslationTask).Metrics["bleu"].Value
	}
	chat := func(sys results.System) float64 {
		GinkgoHelper()
		return matchers.Median(rec(sys, r.ChatTask).Lengths)
	}

	BeforeEach(func() {
		in = input()
		r = in.Roles
		var err error
		w, err = Load(in)
		Expect(err).NotTo(HaveOccurred())
	})

	Describe("each adapter alone", Label("Metric:bleu", "Metric:length"), func() {
		It("translates with the translation adapter, far better than the base and the chat adapter", Label("Adapter:fren"), func() {
			tr := rec(Single(r.Translation), r.TranslationTask)
			Expect(tr).To(matchers.HaveBLEUAtLeast(bleu(results.System{}) + in.Expect.TranslationGain))
			Expect(tr).To(matchers.HaveBLEUAtLeast(bleu(Single(r.Chat)) + in.Expect.TranslationGain))
			Expect(tr).To(matchers.RouteTo(r.Translation))
		})
		It("does not translate with the chat adapter alone", Label("Adapter:oasst"), func() {
			Expect(bleu(Single(r.Chat))).To(BeNumerically("<", in.Expect.ForeignBLEU))
		})
		It("answers chat prompts with the chat adapter, and barely with the translation adapter", Label("Adapter:oasst", "Adapter:fren"), func() {
			Expect(rec(Single(r.Chat), r.ChatTask)).To(matchers.HaveMedianLength(BeNumerically(">", in.Expect.NearEmptyWords)))
			Expect(rec(Single(r.Translation), r.ChatTask)).To(matchers.HaveMedianLength(BeNumerically("<=", in.Expect.NearEmptyWords)))
		})
	})

	Describe("combinations", Label("Metric:bleu", "Metric:length", "Metric:routing"), func() {
		It("keeps both tasks with cat [1,1]: each prompt format routes to its own task", func() {
			cat := r.Combo("cat", 1, 1)
			Expect(bleu(cat)).To(BeNumerically(">=", in.Expect.CatBLEUShare*bleu(Single(r.Translation))),
				"cat [1,1] keeps %.0f%% of the translation BLEU", 100*in.Expect.CatBLEUShare)
			Expect(rec(cat, r.TranslationTask)).To(matchers.RouteTo(r.Translation))
			Expect(rec(cat, r.ChatTask)).To(matchers.RouteTo(r.Chat))
			ch := chat(cat)
			Expect(ch).To(BeNumerically("<", chat(Single(r.Chat))))
			Expect(ch).To(BeNumerically(">=", in.Expect.CatChatShare*chat(Single(r.Chat))))
		})
		// The ramps end at cat [1,1], the grid's full-weight combination: a
		// rank-16 svd of the sum at [1,1] keeps mostly the stronger adapter.
		It("lengthens chat answers as the chat weight rises (translation weight 1)", func() {
			Expect(chat(r.Combo("svd", 1, 0.05))).To(BeNumerically("<=", chat(r.Combo("svd", 1, 0.2))))
			Expect(chat(r.Combo("svd", 1, 0.2))).To(BeNumerically("<=", chat(r.Combo("cat", 1, 1))))
			Expect(chat(r.Combo("svd", 1, 0.05))).To(BeNumerically("<", chat(r.Combo("cat", 1, 1))))
		})
		It("lowers BLEU as the translation weight falls (chat weight 1)", func() {
			Expect(bleu(r.Combo("svd", 0.2, 1))).To(BeNumerically("<=", bleu(r.Combo("svd", 0.5, 1))))
			Expect(bleu(r.Combo("svd", 0.5, 1))).To(BeNumerically("<=", bleu(r.Combo("cat", 1, 1))))
			Expect(bleu(r.Combo("svd", 0.2, 1))).To(BeNumerically("<", bleu(r.Combo("cat", 1, 1))))
		})
		// Both the translation format and the clashing one end in "###>":
		// combined, each adapter's behaviour leaks into the other's prompts.
		It("confuses the tasks when the clashing-format adapter joins the translation adapter", Label("Adapter:clash"), func() {
			if r.Clash == "" {
				Skip("no clashing-format adapter in this world (Roles.Clash)")
			}
			clash := results.System{Adapters: []string{r.Translation, r.Clash}, Method: "cat", Weights: []float64{1, 1}}
			Expect(rec(Single(r.Clash), r.ClashTask)).To(matchers.RouteTo(r.Clash))
			Expect(bleu(clash)).To(BeNumerically("<", bleu(r.Combo("cat", 1, 1))),
				"translation suffers more from the clashing adapter than from the chat adapter")
			own := matchers.Median(rec(Single(r.Clash), r.ClashTask).Lengths)
			Expect(rec(clash, r.ClashTask)).To(matchers.HaveMedianLength(BeNumerically("<=", in.Expect.LowChatShare*own)),
				"the translation adapter cuts the clashing format's answers short")
		})
		It("makes chat answers too short at [1, 0.2]", func() {
			Expect(rec(r.Combo("svd", 1, 0.2), r.ChatTask)).To(matchers.HaveMedianLength(
				BeNumerically("<=", in.Expect.LowChatShare*chat(Single(r.Chat)))))
		})
	})

	args := []any{Label("grid"), func(e GridEntry) {
		sys := r.Combo(e.Method, e.Translation, e.Chat)
		tr, ch := rec(sys, r.TranslationTask), rec(sys, r.ChatTask)
		Expect(tr.Samples).To(BeNumerically(">", 0))
		Expect(ch.Samples).To(BeNumerically(">", 0))
		for _, x := range []results.Record{tr, ch} {
			for name, m := range x.Metrics {
				Expect(m.CILow).To(BeNumerically("<=", m.Value), "%s CI", name)
				Expect(m.CIHigh).To(BeNumerically(">=", m.Value), "%s CI", name)
			}
		}
	}}
	for _, g := range ReferenceGrid {
		args = append(args, Entry(fmt.Sprintf("%s [%g, %g]", g.Method, g.Translation, g.Chat), g))
	}
	DescribeTable("the reference grid", args...)
}

// summary is a one-line description of a record for report entries.
func summary(r results.Record) string {
	s := fmt.Sprintf("n=%d", r.Samples)
	for _, n := range []string{"bleu", "chrf", "length_words", "repetition", "loop_rate", "format_adherence"} {
		if m, ok := r.Metrics[n]; ok {
			s += fmt.Sprintf(" %s=%.2f", n, m.Value)
		}
	}
	for n, v := range r.Routing {
		s += fmt.Sprintf(" route:%s=%.2f", n, v)
	}
	return s
}
