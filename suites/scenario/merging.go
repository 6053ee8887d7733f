package scenario

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/adapter"
	"loramix/engine/merge"
	"loramix/suites/matchers"
)

// MergeProperties declares the properties every merge of the translation
// and chat adapters must have, whatever the base model: cat's rank is the
// sum of the ranks, an svd merge has at most its target rank, linear refuses
// adapters of unequal ranks, and one adapter merged with weight 1
// reproduces itself.
func MergeProperties(input func() Input) {
	var w *World
	var r Roles
	BeforeEach(func() {
		in := input()
		r = in.Roles
		var err error
		w, err = Load(in)
		Expect(err).NotTo(HaveOccurred())
	})
	names := func() []string { return []string{r.Translation, r.Chat} }
	rank := func(name string) int {
		GinkgoHelper()
		ranks := map[int]bool{}
		for _, sv := range matchers.AdapterSpectra(w.Adapter(name)) {
			ranks[matchers.NumericalRank(sv, matchers.DefaultRankTol)] = true
		}
		Expect(ranks).To(HaveLen(1), "adapter %s has modules of several ranks", name)
		for k := range ranks {
			return k
		}
		return 0
	}

	It("gives cat the sum of the ranks", Label("merge"), func() {
		res, err := w.Merge(names(), merge.Options{Method: "cat", Weights: []float64{1, 1}})
		Expect(err).NotTo(HaveOccurred())
		Expect(res).To(matchers.HaveRank(rank(r.Translation) + rank(r.Chat)))
		Expect(res.Rank).To(Equal(w.Adapter(r.Translation).Config.R + w.Adapter(r.Chat).Config.R))
	})
	It("keeps an svd merge at or below its target rank", Label("merge"), func() {
		for _, k := range []int{4, 16} {
			res, err := w.Merge(names(), merge.Options{Method: "svd", Weights: []float64{0.5, 1}, SVDRank: k})
			Expect(err).NotTo(HaveOccurred())
			Expect(res).To(matchers.HaveRankAtMost(k))
			Expect(res.Rank).To(Equal(k))
		}
	})
	It("refuses a linear merge of unequal ranks, naming the ranks", Label("merge"), func() {
		// cat doubles the rank; linear of that with an input must refuse.
		wide, err := w.Merge(names(), merge.Options{Method: "cat", Weights: []float64{1, 1}, Name: "wide"})
		Expect(err).NotTo(HaveOccurred())
		_, err = merge.Merge([]*adapter.Adapter{wide.Adapter, w.Adapter(r.Chat)}, merge.Options{Method: "linear", Weights: []float64{1, 1}})
		Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf("r=%d", wide.Rank))))
	})
	It("reproduces a single adapter merged with weight 1", Label("merge"), func() {
		for _, name := range names() {
			res, err := w.Merge([]string{name}, merge.Options{Method: "linear", Weights: []float64{1}})
			Expect(err).NotTo(HaveOccurred())
			in := w.Adapter(name)
			Expect(res.Adapter.Modules).To(HaveLen(len(in.Modules)))
			for mod, m := range res.Adapter.Modules {
				Expect(merge.RelativeDifference(m, in.Modules[mod])).To(BeNumerically("<", 1e-6), "module %s", mod)
			}
		}
	})
}
