package gate_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/gate"
	"loramix/suites/results"
)

func file(bleu, words float64) *results.File {
	sys := results.System{Adapters: []string{"fren", "oasst"}, Method: "cat", Weights: []float64{1, 1}}
	return &results.File{Records: []results.Record{
		{System: sys, Task: "fren", Metrics: map[string]results.Metric{"bleu": {Value: bleu, HigherIsBetter: true}}},
		{System: sys, Task: "oasst", Metrics: map[string]results.Metric{"repetition": {Value: words, HigherIsBetter: false}}},
	}}
}

var _ = Describe("the gate", func() {
	It("parses relative and per-metric absolute tolerances", func() {
		t, err := gate.ParseTolerance("0.1,bleu=2")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Relative).To(Equal(0.1))
		Expect(t.Allowed("bleu", 10)).To(Equal(2.0))
		Expect(t.Allowed("chrf", 50)).To(Equal(5.0))
		_, err = gate.ParseTolerance("bleu=-1")
		Expect(err).To(MatchError(ContainSubstring(`"-1" is not a non-negative number`)))
	})
	It("passes within tolerance and fails beyond it, in each metric's worse direction", func() {
		tol := gate.Tolerance{Relative: 0.1}
		Expect(gate.Failed(gate.Compare(file(20, 0.1), file(18.5, 0.105), tol))).To(BeFalse())
		rows := gate.Compare(file(20, 0.1), file(17, 0.1), tol)
		Expect(gate.Failed(rows)).To(BeTrue())
		Expect(rows[0].Regressed).To(BeTrue())
		Expect(rows[1].Regressed).To(BeFalse())
		// Lower is better for repetition: a rise is the regression.
		rows = gate.Compare(file(20, 0.1), file(25, 0.2), tol)
		Expect(rows[0].Regressed).To(BeFalse())
		Expect(rows[1].Regressed).To(BeTrue())
	})
	It("fails a result that drops a baseline task, and prints a readable table", func() {
		res := file(20, 0.1)
		res.Records = res.Records[:1]
		rows := gate.Compare(file(20, 0.1), res, gate.Tolerance{Relative: 0.1})
		Expect(gate.Failed(rows)).To(BeTrue())
		var b strings.Builder
		Expect(gate.WriteTable(&b, rows)).To(Succeed())
		Expect(b.String()).To(ContainSubstring("FAIL (missing)"))
		Expect(b.String()).To(MatchRegexp(`cat\[1,1\]\(fren,oasst\)\s+fren\s+bleu\s+20.000\s+20.000\s+\+0.000\s+2.000\s+ok`))
	})
})

var _ = Describe("gating a deployed combination by task", func() {
	It("compares across systems and names both", func() {
		res := file(10, 0.1)
		for i := range res.Records {
			res.Records[i].System.Weights = []float64{0.05, 1}
		}
		rows := gate.CompareByTask(file(20, 0.1), res, gate.Tolerance{Relative: 0.1})
		Expect(gate.Failed(rows)).To(BeTrue())
		Expect(rows[0].System).To(Equal("cat[1,1](fren,oasst) -> cat[0.05,1](fren,oasst)"))
		Expect(rows[0].Regressed).To(BeTrue())
		Expect(rows[1].Regressed).To(BeFalse())
		// With plain Compare the systems do not match at all.
		Expect(gate.Compare(file(20, 0.1), res, gate.Tolerance{Relative: 0.1})[1].Missing).To(BeTrue())
	})
})
