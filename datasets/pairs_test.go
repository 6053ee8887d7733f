package datasets_test

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/datasets"
)

var _ = Describe("CleanPair", func() {
	lim := datasets.DefaultPairLimits

	DescribeTable("keeps clean single-line pairs and drops the rest",
		func(en, fr string, ok bool, want datasets.Pair) {
			got, kept := datasets.CleanPair(en, fr, lim)
			Expect(kept).To(Equal(ok))
			if ok {
				Expect(got).To(Equal(want))
			}
		},
		Entry("plain", "Open the file", "Ouvrir le fichier", true, datasets.Pair{Source: "Ouvrir le fichier", Target: "Open the file"}),
		Entry("mnemonics removed", "_Save the file", "_Enregistrer le fichier", true, datasets.Pair{Source: "Enregistrer le fichier", Target: "Save the file"}),
		Entry("French spaces collapsed", "Are you sure?", "Êtes-vous sûr\u202f?", true, datasets.Pair{Source: "Êtes-vous sûr ?", Target: "Are you sure?"}),
		Entry("printf directive", "Cannot open %s now", "Impossible d'ouvrir %s", false, datasets.Pair{}),
		Entry("brace placeholder", "Deleted {count} files", "{count} fichiers supprimés", false, datasets.Pair{}),
		Entry("markup", "<b>Bold</b> text here", "<b>Gras</b> texte ici", false, datasets.Pair{}),
		Entry("multi-line", "First line\nsecond line", "Première ligne\nseconde", false, datasets.Pair{}),
		Entry("untranslated copy", "Open the file", "Open the file", false, datasets.Pair{}),
		Entry("too short", "Quit", "Quitter", false, datasets.Pair{}),
		Entry("length ratio", "Do it now please", "Faites-le maintenant, s'il vous plaît, tout de suite, sans attendre davantage, vraiment", false, datasets.Pair{}),
	)
})

var _ = Describe("IsFormatOnly", func() {
	DescribeTable("recognizes strings made of directives",
		func(s string, want bool) { Expect(datasets.IsFormatOnly(s)).To(Equal(want)) },
		Entry(nil, "%s", true),
		Entry(nil, "%1$s: %-10.3lu (%%)", true),
		Entry(nil, "{0} / {name}", true),
		Entry(nil, "%s file", false),
		Entry(nil, "Open", false),
	)
})

var _ = Describe("Dedupe", func() {
	It("keeps the first pair per normalized source", func() {
		in := []datasets.Pair{
			{Source: "Ouvrir  le fichier", Target: "Open the file"},
			{Source: "ouvrir le fichier", Target: "Open file"},
			{Source: "Fermer", Target: "Close"},
		}
		Expect(datasets.Dedupe(in)).To(Equal([]datasets.Pair{in[0], in[2]}))
	})
})

var _ = Describe("Splitter", func() {
	s := datasets.Splitter{Salt: "t/", DevPer10k: 1000, TestPer10k: 1000}

	It("is deterministic and depends only on the key", func() {
		for i := 0; i < 100; i++ {
			k := fmt.Sprint("sentence ", i)
			Expect(s.Of(k)).To(Equal(s.Of(k)))
		}
	})

	It("gives each split about its share", func() {
		counts := map[datasets.Split]int{}
		for i := 0; i < 20000; i++ {
			counts[s.Of(fmt.Sprint("key-", i))]++
		}
		Expect(counts[datasets.Test]).To(BeNumerically("~", 2000, 200))
		Expect(counts[datasets.Dev]).To(BeNumerically("~", 2000, 200))
		Expect(counts[datasets.Train]).To(BeNumerically("~", 16000, 300))
	})

	It("changes with the salt", func() {
		other := datasets.Splitter{Salt: "u/", DevPer10k: 1000, TestPer10k: 1000}
		differ := 0
		for i := 0; i < 1000; i++ {
			k := fmt.Sprint("key-", i)
			if s.Of(k) != other.Of(k) {
				differ++
			}
		}
		Expect(differ).To(BeNumerically(">", 200))
	})
})
