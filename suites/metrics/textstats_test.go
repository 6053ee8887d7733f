package metrics_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/metrics"
)

// toyDecode decodes ids of a toy vocabulary, the way a tokenizer would.
var toyVocab = map[int]string{1: "</s>", 2: "You", 3: " are", 4: " here", 5: ".", 6: "\n", 7: "###>", 8: " ok\nmore", 9: " the"}

func toyDecode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(toyVocab[id])
	}
	return b.String()
}

var _ = Describe("Length", Label("Metric:length"), func() {
	It("cuts at the earliest stop string and reports it", func() {
		kept, stop := metrics.TruncateAtStop("You are here.\n###> more", []string{"###>", "\n"})
		Expect(kept).To(Equal("You are here."))
		Expect(stop).To(Equal("\n"))
		kept, stop = metrics.TruncateAtStop("no stop here", []string{"</s>", ""})
		Expect(kept).To(Equal("no stop here"))
		Expect(stop).To(BeEmpty())
		kept, _ = metrics.TruncateAtStop("###> at once", []string{"###>"})
		Expect(kept).To(BeEmpty())
	})

	It("cuts token ids at EOS", func() {
		Expect(metrics.TruncateAtEOS([]int{2, 3, 1, 4}, 1)).To(Equal([]int{2, 3}))
		Expect(metrics.TruncateAtEOS([]int32{2, 3}, 1)).To(Equal([]int32{2, 3}))
		Expect(metrics.TruncateAtEOS([]int{1}, 1)).To(BeEmpty())
	})

	It("counts tokens and words up to EOS", func() {
		l := metrics.MeasureLength([]int{2, 3, 4, 5, 1, 2, 3}, 1, toyDecode, []string{"\n"})
		Expect(l).To(Equal(metrics.Length{Tokens: 4, Words: 3, Text: "You are here.", EOS: true}))
	})

	It("counts tokens up to a stop string; a token that only carries the stop is not counted", func() {
		l := metrics.MeasureLength([]int{2, 3, 4, 5, 6, 7, 2}, 1, toyDecode, []string{"\n"})
		Expect(l.Tokens).To(Equal(4))
		Expect(l.Words).To(Equal(3))
		Expect(l.Stop).To(Equal("\n"))
		Expect(l.EOS).To(BeFalse())
	})

	It("counts a token that carries text before the stop", func() {
		l := metrics.MeasureLength([]int{2, 3, 8, 9}, 1, toyDecode, []string{"\n"})
		Expect(l.Text).To(Equal("You are ok"))
		Expect(l.Tokens).To(Equal(3))
		Expect(l.Words).To(Equal(3))
	})

	It("gives an answer that is only a stop string zero length", func() {
		l := metrics.MeasureLength([]int{7, 2, 3}, 1, toyDecode, []string{"###>"})
		Expect(l.Tokens).To(Equal(0))
		Expect(l.Words).To(Equal(0))
	})

	It("counts words by whitespace, Unicode spaces included", func() {
		Expect(metrics.WordCount("  one\ttwo\u00a0three\u3000four\n")).To(Equal(4))
		Expect(metrics.WordCount("")).To(Equal(0))
	})

	It("takes medians", func() {
		Expect(metrics.Median([]int{5, 1, 3})).To(Equal(3.0))
		Expect(metrics.Median([]int{4, 1, 3, 10})).To(Equal(3.5))
		Expect(metrics.Median([]float64{})).To(Equal(0.0))
	})
})

var _ = Describe("Repetition", Label("Metric:repetition"), func() {
	It("measures the share of repeated n-grams", func() {
		// 1 2 3 1 2 3 1 2: trigrams 123 231 312 123 231 312 -> 3 of 6 are repeats.
		Expect(metrics.RepeatedNGramShare([]int{1, 2, 3, 1, 2, 3, 1, 2}, 3)).To(Equal(0.5))
		Expect(metrics.RepeatedNGramShare(strings.Fields("the cat sat on the mat"), 3)).To(Equal(0.0))
		// Unigrams: "the" repeats once among 6 words.
		Expect(metrics.RepeatedNGramShare(strings.Fields("the cat sat on the mat"), 1)).To(BeNumerically("~", 1.0/6, 1e-15))
		Expect(metrics.RepeatedNGramShare(strings.Fields("a a a a a"), 2)).To(Equal(0.75))
		Expect(metrics.RepeatedNGramShare([]string{"a", "b"}, 3)).To(Equal(0.0))
		Expect(func() { metrics.RepeatedNGramShare([]int{1}, 0) }).To(Panic())
	})

	It("does not confuse n-grams whose elements join alike", func() {
		Expect(metrics.RepeatedNGramShare([]string{"a b", "c", "a", "b c"}, 2)).To(Equal(0.0))
	})

	It("finds the loop in a runaway generation", func() {
		unit := "###> You are the only customer in the store."
		text := unit + unit + "###> You are"
		l, ok := metrics.FindTextLoop(text, 10, 2)
		Expect(ok).To(BeTrue())
		Expect(l.Text).To(Equal(unit))
		Expect(l.Start).To(Equal(0))
		Expect(l.Count).To(Equal(2))
		Expect(l.Tail).To(Equal(len("###> You are")))
	})

	It("finds a loop in the middle, preferring the shortest unit that covers most", func() {
		l, ok := metrics.FindLoop(strings.Fields("so I said the cat the cat the cat the cat and left"), 1, 3)
		Expect(ok).To(BeTrue())
		Expect(l).To(Equal(metrics.Loop{Start: 3, Unit: 2, Count: 4, Tail: 0}))
		l, ok = metrics.FindLoop([]int{1, 1, 1, 1, 1, 1}, 1, 2)
		Expect(ok).To(BeTrue())
		Expect(l).To(Equal(metrics.Loop{Start: 0, Unit: 1, Count: 6}))
	})

	It("finds no loop in ordinary text or below the thresholds", func() {
		_, ok := metrics.FindTextLoop("You are the only customer in the store.", 4, 2)
		Expect(ok).To(BeFalse())
		_, ok = metrics.FindTextLoop("abcabc", 4, 2) // unit shorter than 4
		Expect(ok).To(BeFalse())
		_, ok = metrics.FindTextLoop("hello hello ", 6, 3) // only 2 repeats
		Expect(ok).To(BeFalse())
		_, ok = metrics.FindTextLoop("", 1, 2)
		Expect(ok).To(BeFalse())
	})

	It("works on code points", func() {
		l, ok := metrics.FindTextLoop("→ 東京 東京 東京", 3, 3)
		Expect(ok).To(BeTrue())
		Expect(l.Text).To(Equal(" 東京"))
		Expect(l.Count).To(Equal(3))
	})
})
