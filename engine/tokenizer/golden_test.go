package tokenizer_test

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/tokenizer"
)

// goldenCase is one line of testdata/llama2_golden.jsonl, written by
// reference/tokenizer_golden.py with transformers' LlamaTokenizerFast
// (legacy=True). Encode cases have Text; decode cases have DecodeIDs. The
// raw* fields are present where the tokenizers library reading
// tokenizer.json literally differs from transformers.
type goldenCase struct {
	I           int     `json:"i"`
	Text        *string `json:"text"`
	IDs         []int   `json:"ids"`
	IDsNoBOS    []int   `json:"ids_nobos"`
	Dec         string  `json:"dec"`
	DecNoBOS    string  `json:"dec_nobos"`
	DecodeIDs   []int   `json:"decode_ids"`
	RawIDs      []int   `json:"raw_ids"`
	RawIDsNoBOS []int   `json:"raw_ids_nobos"`
	RawDec      *string `json:"raw_dec"`
}

type goldenMeta struct {
	Transformers string `json:"transformers"`
	Decode       string `json:"decode"`
	BOS          int    `json:"bos_token_id"`
	EOS          int    `json:"eos_token_id"`
	UNK          int    `json:"unk_token_id"`
	Len          int    `json:"len"`
	EncodeCases  int    `json:"encode_cases"`
	DecodeCases  int    `json:"decode_cases"`
}

func readGolden() (goldenMeta, []goldenCase) {
	GinkgoHelper()
	matches, _ := filepath.Glob("testdata/llama2_golden.jsonl*")
	Expect(matches).To(HaveLen(1), "want one testdata/llama2_golden.jsonl[.gz]")
	f, err := os.Open(matches[0])
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(f.Close)
	var r io.Reader = f
	if strings.HasSuffix(matches[0], ".gz") {
		zr, err := gzip.NewReader(f)
		Expect(err).NotTo(HaveOccurred())
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<24)
	Expect(sc.Scan()).To(BeTrue())
	var head struct {
		Meta goldenMeta `json:"meta"`
	}
	Expect(json.Unmarshal(sc.Bytes(), &head)).To(Succeed())
	var cases []goldenCase
	for sc.Scan() {
		var c goldenCase
		Expect(json.Unmarshal(sc.Bytes(), &c)).To(Succeed())
		cases = append(cases, c)
	}
	Expect(sc.Err()).NotTo(HaveOccurred())
	return head.Meta, cases
}

// mismatches collects failures and reports the first few with their input.
type mismatches []string

func (m *mismatches) check(c goldenCase, what string, got, want any) {
	if fmt.Sprint(got) != fmt.Sprint(want) {
		in := fmt.Sprint(c.DecodeIDs)
		if c.Text != nil {
			in = fmt.Sprintf("%q", *c.Text)
		}
		*m = append(*m, fmt.Sprintf("case %d %s: input %s\n  got  %v\n  want %v", c.I, what, in, got, want))
	}
}

func (m mismatches) String() string {
	head := m[:min(len(m), 10)]
	return fmt.Sprintf("%d mismatches; first ones:\n%s", len(m), strings.Join(head, "\n"))
}

func quoted(s string) string { return fmt.Sprintf("%q", s) }

var _ = Describe("the Llama 2 tokenizer against transformers' LlamaTokenizerFast golden", Ordered, func() {
	var (
		tok, fileTok, noCache *tokenizer.Tokenizer
		meta                  goldenMeta
		cases                 []goldenCase
		encodeCases           []goldenCase
	)

	BeforeAll(func() {
		path := tokenizerPath()
		var err error
		tok, err = tokenizer.Load(path)
		Expect(err).NotTo(HaveOccurred())
		fileTok, err = tokenizer.LoadWith(path, tokenizer.Options{FilePipeline: true})
		Expect(err).NotTo(HaveOccurred())
		noCache, err = tokenizer.LoadWith(path, tokenizer.Options{CacheWords: -1})
		Expect(err).NotTo(HaveOccurred())
		meta, cases = readGolden()
		for _, c := range cases {
			if c.Text != nil {
				encodeCases = append(encodeCases, c)
			}
		}
		Expect(encodeCases).To(HaveLen(meta.EncodeCases))
		Expect(len(cases) - len(encodeCases)).To(Equal(meta.DecodeCases))
		Expect(len(encodeCases)).To(BeNumerically(">=", 2000))
		Expect(meta.Decode).To(Equal("decode(ids, skip_special_tokens=False)"))
	})

	It("has the reference's special ids and size", func() {
		Expect(tok.BOS()).To(Equal(meta.BOS))
		Expect(tok.EOS()).To(Equal(meta.EOS))
		Expect(tok.UNK()).To(Equal(meta.UNK))
		Expect(tok.VocabSize()).To(Equal(meta.Len))
		Expect(tok.AddsBOS()).To(BeTrue())
		Expect(tok.AddsEOS()).To(BeFalse())
	})

	It("encodes every string with BOS exactly", func() {
		var m mismatches
		for _, c := range encodeCases {
			m.check(c, "ids", tok.Encode(*c.Text, true), c.IDs)
			m.check(c, "EncodeSpecial", tok.EncodeSpecial(*c.Text), c.IDs)
		}
		Expect(m).To(BeEmpty(), m.String)
	})

	It("encodes every string without BOS exactly", func() {
		var m mismatches
		for _, c := range encodeCases {
			m.check(c, "ids_nobos", tok.Encode(*c.Text, false), c.IDsNoBOS)
		}
		Expect(m).To(BeEmpty(), m.String)
	})

	It("decodes every golden id list exactly, with and without BOS", func() {
		var m mismatches
		for _, c := range encodeCases {
			m.check(c, "dec", quoted(tok.Decode(c.IDs)), quoted(c.Dec))
			m.check(c, "dec_nobos", quoted(tok.Decode(c.IDsNoBOS)), quoted(c.DecNoBOS))
		}
		Expect(m).To(BeEmpty(), m.String)
	})

	It("decodes random id sequences exactly (byte runs, specials, stray spaces)", func() {
		var m mismatches
		n := 0
		for _, c := range cases {
			if c.Text == nil {
				n++
				m.check(c, "dec", quoted(tok.Decode(c.DecodeIDs)), quoted(c.Dec))
			}
		}
		Expect(n).To(BeNumerically(">=", 400))
		Expect(m).To(BeEmpty(), m.String)
	})

	It("follows tokenizer.json literally with FilePipeline, like the tokenizers library", func() {
		var m mismatches
		differ := 0
		for _, c := range encodeCases {
			want, wantNoBOS := c.IDs, c.IDsNoBOS
			if c.RawIDs != nil {
				differ++
				want, wantNoBOS = c.RawIDs, c.RawIDsNoBOS
			}
			m.check(c, "raw_ids", fileTok.Encode(*c.Text, true), want)
			m.check(c, "raw_ids_nobos", fileTok.Encode(*c.Text, false), wantNoBOS)
			m.check(c, "raw_dec", quoted(fileTok.Decode(c.IDs)), quoted(c.Dec))
		}
		Expect(m).To(BeEmpty(), m.String)
		// The two pipelines really differ on this golden (leading spaces).
		Expect(differ).To(BeNumerically(">", 100))
	})

	It("cuts text into words only where that cannot change the result", func() {
		Expect(tok.SplitSafe()).To(BeTrue())
		texts := make([]string, 0, len(encodeCases)+2000)
		for _, c := range encodeCases {
			texts = append(texts, *c.Text)
		}
		// Random strings over a small alphabet rich in spaces and '▁'.
		rng := rand.New(rand.NewPCG(1, 2))
		alphabet := []string{" ", " ", "▁", "a", "b", "e", "t", "h", "n", "s", "'", ".", "\n", "é", "日", "😀", "<s>", "1", "0"}
		for range 2000 {
			var b strings.Builder
			for range rng.IntN(40) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			texts = append(texts, b.String())
		}
		var bad []string
		for _, s := range texts {
			if !slices.Equal(noCache.Encode(s, false), noCache.EncodeWhole(s)) {
				bad = append(bad, fmt.Sprintf("%q", s))
			}
		}
		Expect(bad).To(BeEmpty())
	})

	It("gives the same ids with and without the word cache, also when called concurrently", func() {
		done := make(chan []string, 4)
		for w := range 4 {
			go func() {
				defer GinkgoRecover()
				var bad []string
				for k, c := range encodeCases {
					if k%4 == w && !slices.Equal(tok.Encode(*c.Text, true), noCache.Encode(*c.Text, true)) {
						bad = append(bad, *c.Text)
					}
				}
				done <- bad
			}()
		}
		for range 4 {
			Expect(<-done).To(BeEmpty())
		}
	})

	It("streams: a Decoder fed one id at a time writes exactly Decode's text", func() {
		var m mismatches
		for _, c := range cases {
			ids := c.IDs
			if c.Text == nil {
				ids = c.DecodeIDs
			}
			d := tok.NewDecoder()
			var b strings.Builder
			for _, id := range ids {
				b.WriteString(d.Add(id))
			}
			b.WriteString(d.Flush())
			m.check(c, "stream", quoted(b.String()), quoted(tok.Decode(ids)))
		}
		Expect(m).To(BeEmpty(), m.String)
	})

	It("gives each token's text with DecodeToken and its piece with Piece", func() {
		hello := tok.Encode("Hello world", false)
		Expect(hello).To(HaveLen(2))
		Expect(tok.Piece(hello[0])).To(Equal("▁Hello"))
		Expect(tok.DecodeToken(hello[1])).To(Equal(" world"))
		Expect(tok.Piece(tok.BOS())).To(Equal("<s>"))
		Expect(tok.IsSpecial(tok.BOS())).To(BeTrue())
		Expect(tok.IsSpecial(hello[0])).To(BeFalse())
		nl, ok := tok.ID("<0x0A>")
		Expect(ok).To(BeTrue())
		Expect(tok.DecodeToken(nl)).To(Equal("\n"))
		Expect(tok.Piece(-1)).To(Equal(""))
		Expect(tok.DecodeToken(tok.VocabSize())).To(Equal(""))
		// Raw bytes of an emoji, concatenated, are its UTF-8.
		var b strings.Builder
		for _, id := range tok.Encode("😀", false)[1:] { // after the "▁" piece
			b.WriteString(tok.DecodeToken(id))
		}
		Expect(b.String()).To(Equal("😀"))
	})
})
