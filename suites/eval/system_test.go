package eval_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/eval"
)

var _ = Describe("combinations on the command line", func() {
	names := []string{"fren", "oasst", "clash"}
	It("reads base, single adapters and weighted combinations", func() {
		s, err := eval.ParseCombine("base", names)
		Expect(err).NotTo(HaveOccurred())
		Expect(s.Key()).To(Equal("base"))
		s, err = eval.ParseCombine("oasst", names)
		Expect(err).NotTo(HaveOccurred())
		Expect(s.Key()).To(Equal("oasst"))
		s, err = eval.ParseCombine("svd:0.5,1,0", names)
		Expect(err).NotTo(HaveOccurred())
		Expect(s.Key()).To(Equal("svd[0.5,1,0](fren,oasst,clash)"))
		s, err = eval.ParseCombine("cat-exact:1,1@fren,clash", names)
		Expect(err).NotTo(HaveOccurred())
		Expect(s.Exact).To(BeTrue())
		Expect(s.Key()).To(Equal("cat-exact[1,1](fren,clash)"))
	})
	It("names the problem in bad combinations", func() {
		_, err := eval.ParseCombine("svd:0.5,1", names)
		Expect(err).To(MatchError(ContainSubstring("2 weights for 3 adapters")))
		_, err = eval.ParseCombine("svd:0.5,x@fren,oasst", names)
		Expect(err).To(MatchError(ContainSubstring(`weight "x" is not a number`)))
		_, err = eval.ParseCombine("svd:1,1@fren,nope", names)
		Expect(err).To(MatchError(ContainSubstring(`no adapter "nope"`)))
		_, err = eval.ParseCombine("svd", names)
		Expect(err).To(MatchError(ContainSubstring("want METHOD:W1,W2")))
	})
	It("reads NAME=DIR adapter flags and refuses duplicates", func() {
		nd, err := eval.ParseNamedDirs([]string{"fren=a/b", "oasst=c"})
		Expect(err).NotTo(HaveOccurred())
		Expect(nd).To(Equal([]eval.NamedDir{{Name: "fren", Dir: "a/b"}, {Name: "oasst", Dir: "c"}}))
		_, err = eval.ParseNamedDirs([]string{"fren=a", "fren=b"})
		Expect(err).To(MatchError(ContainSubstring(`name "fren" given twice`)))
		_, err = eval.ParseNamedDirs([]string{"fren"})
		Expect(err).To(MatchError(ContainSubstring("want NAME=DIR")))
	})
})
