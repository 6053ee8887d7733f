package datasets_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/datasets"
)

const translationEN = `Package: foo
Description-md5: 11111111111111111111111111111111
Description-en: frobnicate files quickly
 Foo frobnicates files. It is fast.
 .
 It also  has   a second
 paragraph.

Package: bar
Description-md5: 22222222222222222222222222222222
Description-en: bar tool
 The bar tool bars things.

Package: baz
Description-md5: 33333333333333333333333333333333
Description-en: English only
 Nobody translated this one.
`

const translationFR = `Package: bar
Description-md5: 22222222222222222222222222222222
Description-fr: outil bar
 L'outil bar fait des choses.

Package: foo
Description-md5: 11111111111111111111111111111111
Description-fr: frobniquer des fichiers rapidement
 Foo frobnique des fichiers.

Package: orphan
Description-md5: 99999999999999999999999999999999
Description-fr: sans original
 Rien.
`

var _ = Describe("ParseTranslation and PairDescriptions", func() {
	It("reads summaries and paragraphs", func() {
		en, err := datasets.ParseTranslation("Translation-en", "en", strings.NewReader(translationEN))
		Expect(err).NotTo(HaveOccurred())
		Expect(en).To(HaveLen(3))
		Expect(en[0]).To(Equal(datasets.Description{
			Package: "foo", MD5: "11111111111111111111111111111111",
			Summary:    "frobnicate files quickly",
			Paragraphs: []string{"Foo frobnicates files. It is fast.", "It also has a second paragraph."},
		}))
	})

	It("pairs French and English summaries by Description-md5, in French order", func() {
		en, err := datasets.ParseTranslation("Translation-en", "en", strings.NewReader(translationEN))
		Expect(err).NotTo(HaveOccurred())
		fr, err := datasets.ParseTranslation("Translation-fr", "fr", strings.NewReader(translationFR))
		Expect(err).NotTo(HaveOccurred())
		Expect(datasets.PairDescriptions(en, fr)).To(Equal([]datasets.Pair{
			{Source: "outil bar", Target: "bar tool"},
			{Source: "frobniquer des fichiers rapidement", Target: "frobnicate files quickly"},
		}))
	})

	It("names the file and line of an entry without md5", func() {
		_, err := datasets.ParseTranslation("T-en", "en", strings.NewReader("Package: x\nDescription-en: y\n"))
		Expect(err).To(MatchError(ContainSubstring(`T-en:1: entry for package "x" lacks Description-md5`)))
	})
})
