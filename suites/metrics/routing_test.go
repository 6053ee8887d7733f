package metrics_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/metrics"
)

var translation = metrics.FormatRules{
	NonEmpty: true, SingleLine: true,
	Forbid:    []string{"### Human", "### Assistant", "###>"},
	NotCopyOf: []metrics.CopyRule{{Field: "source", MaxOverlap: 0.6}},
	Language:  "en",
}

var answer = metrics.FormatRules{
	NonEmpty:       true,
	ForbidPrefixes: []string{"###>", "### Human"},
	NotCopyOf:      []metrics.CopyRule{{Field: "question"}},
	Language:       "en",
}

func mustCompile(r metrics.FormatRules) *metrics.FormatChecker {
	GinkgoHelper()
	c, err := r.Compile()
	Expect(err).NotTo(HaveOccurred())
	return c
}

func ruleNames(vs []metrics.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Rule)
	}
	return out
}

var _ = Describe("Format rules", Label("Routing"), func() {
	src := map[string]string{"source": "Tu es le seul client du magasin."}

	It("accepts a translation that follows the format", func() {
		Expect(mustCompile(translation).Check(" You are the only customer in the store.", src)).To(BeEmpty())
	})

	DescribeTable("names each broken translation rule",
		func(out string, want ...string) {
			Expect(ruleNames(mustCompile(translation).Check(out, src))).To(Equal(want))
		},
		Entry("empty", "  \n", "non_empty"),
		Entry("two lines", "You are the only customer.\nIn the store.", "single_line"),
		Entry("a chat marker", "### Assistant: You are the only customer.", "forbid[1]"),
		Entry("a loop of translation markers", "You are###> You are", "forbid[2]"),
		Entry("a copy of the French", "Tu es le seul client du magasin.", "not_copy_of[0]", "language"),
		Entry("French continued", "Je suis le seul client de la boutique, et vous ?", "language"),
	)

	It("checks chat answers: not a translation marker, not the question again", func() {
		c := mustCompile(answer)
		q := map[string]string{"question": "What is the bash package?"}
		Expect(c.Check("Bash is the GNU Project's shell.", q)).To(BeEmpty())
		Expect(ruleNames(c.Check("###> Bash is a shell.", q))).To(Equal([]string{"forbid_prefixes[0]"}))
		Expect(ruleNames(c.Check("What is the bash package?", q))).To(Equal([]string{"not_copy_of[0]"}))
		Expect(ruleNames(c.Check("", q))).To(Equal([]string{"non_empty"}))
		// Too short to be a copy.
		Expect(mustCompile(metrics.FormatRules{NotCopyOf: []metrics.CopyRule{{Field: "question", MinWords: 3}}}).Check("Bash?", map[string]string{"question": "Bash?"})).To(BeEmpty())
		// A rule on a field the record lacks is not applied.
		Expect(c.Check("What is the bash package?", nil)).To(BeEmpty())
	})

	It("applies word bounds and patterns", func() {
		c := mustCompile(metrics.FormatRules{MinWords: 2, MaxWords: 3, ForbidPatterns: []string{`\d{3,}`}, RequirePatterns: []string{`^[A-Z]`}})
		Expect(c.Check("Two words", nil)).To(BeEmpty())
		vs := c.Check("one", nil)
		Expect(ruleNames(vs)).To(Equal([]string{"min_words", "require_patterns[0]"}))
		Expect(vs[0].String()).To(Equal("min_words: 1 words, want at least 2"))
		Expect(ruleNames(c.Check("Call 5551234 now please", nil))).To(Equal([]string{"max_words", "forbid_patterns[0]"}))
	})

	It("rejects bad rules with the rule's name", func() {
		_, err := metrics.FormatRules{ForbidPatterns: []string{"ok", "(unclosed"}}.Compile()
		Expect(err).To(MatchError(ContainSubstring("forbid_patterns[1]")))
		_, err = metrics.FormatRules{NotCopyOf: []metrics.CopyRule{{Field: "source", MaxOverlap: 2}}}.Compile()
		Expect(err).To(MatchError(ContainSubstring("not_copy_of[0].max_overlap")))
		_, err = metrics.FormatRules{Language: "de"}.Compile()
		Expect(err).To(MatchError(ContainSubstring("language")))
		_, err = metrics.FormatRules{Forbid: []string{""}}.Compile()
		Expect(err).To(MatchError(ContainSubstring("forbid[0]")))
	})

	It("tells English from French", func() {
		lang, ok := metrics.GuessLanguage("The files were deleted.")
		Expect(ok).To(BeTrue())
		Expect(lang).To(Equal("en"))
		lang, ok = metrics.GuessLanguage("Les fichiers ont été supprimés avec succès.")
		Expect(ok).To(BeTrue())
		Expect(lang).To(Equal("fr"))
		lang, _ = metrics.GuessLanguage("Impossible d'ouvrir l'archive")
		Expect(lang).To(Equal("fr"))
		_, ok = metrics.GuessLanguage("42 !")
		Expect(ok).To(BeFalse())
	})

	It("measures word overlap", func() {
		Expect(metrics.WordOverlap("Le chat, le chien.", "le CHAT dort")).To(Equal(0.75))
		Expect(metrics.WordOverlap("", "x")).To(Equal(0.0))
	})
})

var _ = Describe("Routing", Label("Routing"), func() {
	It("attributes a combined output to the closer single-adapter output", func() {
		fren := "You are the only customer in the store."
		oasst := "Bash is the GNU Project's shell, the Bourne Again SHell."
		a := metrics.Attribute("You are the only client in the shop.", map[string]string{"fren": fren, "oasst": oasst}, 1)
		Expect(a.Closest).To(Equal("fren"))
		Expect(a.Scores["fren"]).To(BeNumerically("~", metrics.SentenceCHRF("You are the only client in the shop.", fren).Score, 0))
		Expect(a.Scores["fren"]).To(BeNumerically(">", a.Scores["oasst"]))

		Expect(metrics.Attribute("Bash is a shell.", map[string]string{"fren": fren, "oasst": oasst}, 1).Closest).To(Equal("oasst"))
		// An output equally far from both, or nothing to compare, is a tie.
		Expect(metrics.Attribute("", map[string]string{"fren": fren, "oasst": oasst}, 1).Closest).To(Equal(metrics.Tie))
		Expect(metrics.Attribute("x", map[string]string{"a": "x y", "b": "x y"}, 1).Closest).To(Equal(metrics.Tie))
		Expect(metrics.Attribute("x", nil, 1).Closest).To(Equal(metrics.Tie))
	})

	It("classifies outputs by the formats they follow", func() {
		bs := []metrics.NamedRules{{Name: "translation", Checker: mustCompile(translation)}, {Name: "answer", Checker: mustCompile(metrics.FormatRules{NonEmpty: true, MinWords: 12, ForbidPrefixes: []string{"###>"}})}}
		f := map[string]string{"source": "Tu es le seul client du magasin."}
		Expect(metrics.Classify("You are the only customer in the store.", f, bs)).To(Equal("translation"))
		Expect(metrics.Classify("Bash is the shell of the GNU Project.\nIt runs scripts and reads commands typed at a terminal.", f, bs)).To(Equal("answer"))
		Expect(metrics.Classify("###> ###>", f, bs)).To(Equal(metrics.NoFormat))
		Expect(metrics.Classify("Bash is the shell of the GNU Project; it runs scripts and reads commands from a terminal.", f, bs)).To(Equal(metrics.Ambiguous))
	})

	It("counts a routing matrix and renders it", func() {
		m := metrics.NewRoutingMatrix([]string{"fren", "oasst", "clash"}, []string{"translation", "answer", "none"})
		for i := 0; i < 9; i++ {
			m.Add("fren", "translation")
		}
		m.Add("fren", "none")
		m.Add("oasst", "answer")
		m.Add("oasst", "translation")
		m.Add("new", "ambiguous")
		Expect(m.Rows()).To(Equal([]string{"fren", "oasst", "clash", "new"}))
		Expect(m.Cols()).To(Equal([]string{"translation", "answer", "none", "ambiguous"}))
		Expect(m.Count("fren", "translation")).To(Equal(9))
		Expect(m.RowTotal("fren")).To(Equal(10))
		Expect(m.Share("fren", "translation")).To(Equal(0.9))
		Expect(m.Share("clash", "answer")).To(Equal(0.0))
		Expect(m.RowShares("oasst")).To(Equal(map[string]float64{"translation": 0.5, "answer": 0.5, "none": 0, "ambiguous": 0}))
		Expect(m.Render()).To(Equal(
			"format  translation     answer       none   ambiguous  total\n" +
				"fren      9 (90.0%)   0 (0.0%)  1 (10.0%)    0 (0.0%)     10\n" +
				"oasst     1 (50.0%)  1 (50.0%)   0 (0.0%)    0 (0.0%)      2\n" +
				"clash      0 (0.0%)   0 (0.0%)   0 (0.0%)    0 (0.0%)      0\n" +
				"new        0 (0.0%)   0 (0.0%)   0 (0.0%)  1 (100.0%)      1\n"))

		var zero metrics.RoutingMatrix
		zero.Add("a", "b")
		Expect(zero.Share("a", "b")).To(Equal(1.0))
	})
})
