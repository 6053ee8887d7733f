package tokenizer_test

import (
	"encoding/json"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/tokenizer"
)

// tinyJSON is a hand-made tokenizer.json of the Llama kind, small enough to
// work out every expected id by hand.
func tinyJSON() map[string]any {
	vocab := map[string]any{
		"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "a": 4, "b": 5, "▁a": 6, "aa": 7, "ab": 8,
		"<0xC3>": 9, "<0xA9>": 10, "▁▁": 11, "x": 12, "▁b": 13,
	}
	return map[string]any{
		"version": "1.0",
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<unk>", "special": true},
			map[string]any{"id": 1, "content": "<s>", "special": true},
			map[string]any{"id": 2, "content": "</s>", "special": true},
		},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		}},
		"pre_tokenizer": nil,
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		"model": map[string]any{
			"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
			"vocab":  vocab,
			"merges": []any{"▁ a", "a a", "a b", "▁ ▁", "▁ b"},
		},
	}
}

// writeTiny writes tok (and cfg, when not nil) into a fresh directory and
// returns the tokenizer.json path.
func writeTiny(tok map[string]any, cfg map[string]any) string {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	data, err := json.Marshal(tok)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644)).To(Succeed())
	if cfg != nil {
		data, err := json.Marshal(cfg)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), data, 0o644)).To(Succeed())
	}
	return filepath.Join(dir, "tokenizer.json")
}

func loadTiny(tok map[string]any, cfg map[string]any) *tokenizer.Tokenizer {
	GinkgoHelper()
	t, err := tokenizer.Load(writeTiny(tok, cfg))
	Expect(err).NotTo(HaveOccurred())
	return t
}

var _ = Describe("a hand-made tokenizer.json", func() {
	It("merges lowest rank first, leftmost first among equal ranks", func() {
		t := loadTiny(tinyJSON(), nil)
		// "▁aaa": "▁ a" (rank 0) gives ▁a a a, then "a a" (rank 1) the leftmost pair.
		Expect(t.Encode("aaa", false)).To(Equal([]int{6, 7}))
		// "▁aaaa" -> ▁a a a a -> ▁a aa a (leftmost), then no pair "aa a".
		Expect(t.Encode("aaaa", false)).To(Equal([]int{6, 7, 4}))
		// "▁bab": "▁ b" is rank 4 but the only pair besides "a b" (rank 2).
		Expect(t.Encode("bab", false)).To(Equal([]int{13, 8}))
		Expect(t.Encode("", true)).To(Equal([]int{1}))
		Expect(t.Encode("a", true)).To(Equal([]int{1, 6}))
	})

	It("reads merges written as pairs like merges written as strings", func() {
		j := tinyJSON()
		j["model"].(map[string]any)["merges"] = []any{
			[]any{"▁", "a"}, []any{"a", "a"}, []any{"a", "b"}, []any{"▁", "▁"}, []any{"▁", "b"},
		}
		t := loadTiny(j, nil)
		Expect(t.Encode("aaaa bab", false)).To(Equal([]int{6, 7, 4, 13, 8}))
	})

	It("falls back to byte tokens, else to one fused unknown token", func() {
		t := loadTiny(tinyJSON(), nil)
		Expect(t.Encode("é", false)).To(Equal([]int{3, 9, 10}))
		// "ü" is C3 BC: <0xBC> is missing, so it is unknown; "üü" fuses.
		Expect(t.Encode("üüx", false)).To(Equal([]int{3, 0, 12}))
		Expect(t.Decode([]int{3, 9, 10})).To(Equal("é"))
		Expect(t.Decode([]int{3, 9, 12})).To(Equal("\uFFFDx"))
	})

	It("splits on special tokens and prepends the marker to each piece (tokenizer.json's normalizer)", func() {
		t := loadTiny(tinyJSON(), nil)
		Expect(t.Encode("a<s>a", false)).To(Equal([]int{6, 1, 6}))
		Expect(t.Encode("<s></s>", false)).To(Equal([]int{1, 2}))
		// Prepend is unconditional: " a" becomes "▁▁a" (▁ ▁a: rank 0 first)
		// and "  " becomes "▁▁▁" (▁▁ ▁).
		Expect(t.Encode(" a", false)).To(Equal([]int{3, 6}))
		Expect(t.Encode("  ", false)).To(Equal([]int{11, 3}))
		Expect(t.Decode([]int{1, 6, 2})).To(Equal("<s> a</s>"))
		Expect(t.Decode([]int{6, 6})).To(Equal("a a"))
	})

	It("rebuilds the pipeline as transformers does for a Llama class in tokenizer_config.json", func() {
		cfg := map[string]any{"tokenizer_class": "LlamaTokenizer", "legacy": true, "add_bos_token": true}
		t := loadTiny(tinyJSON(), cfg)
		// Metaspace "always": no second marker when the text starts with a space.
		Expect(t.Encode(" a", false)).To(Equal([]int{6}))
		Expect(t.Encode("a<s> a", false)).To(Equal([]int{6, 1, 6}))
		cfg["legacy"] = false // prepend only to the start of the text
		t = loadTiny(tinyJSON(), cfg)
		Expect(t.Encode("a<s>a", false)).To(Equal([]int{6, 1, 4}))
		cfg["add_eos_token"] = true
		cfg["add_bos_token"] = false
		t = loadTiny(tinyJSON(), cfg)
		Expect(t.EncodeSpecial("a")).To(Equal([]int{6, 2}))
	})

	It("splits before every marker with a Metaspace pre-tokenizer that splits", func() {
		j := tinyJSON()
		j["normalizer"] = nil
		j["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}
		t := loadTiny(j, nil)
		// "▁▁" is cut into "▁" and "▁", so "▁ ▁" never merges.
		Expect(t.Encode("  ", false)).To(Equal([]int{3, 3}))
		Expect(t.Encode("  a", false)).To(Equal([]int{3, 6}))
	})

	DescribeTable("refuses bad files with an error naming the file and the field",
		func(mutate func(j map[string]any), cfg map[string]any, want string) {
			j := tinyJSON()
			mutate(j)
			path := writeTiny(j, cfg)
			_, err := tokenizer.Load(path)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(want))
			Expect(err.Error()).To(ContainSubstring(filepath.Dir(path)))
		},
		Entry("model type", func(j map[string]any) { j["model"].(map[string]any)["type"] = "WordPiece" }, nil, `model.type "WordPiece"`),
		Entry("merge of unknown pieces", func(j map[string]any) {
			j["model"].(map[string]any)["merges"] = []any{"▁ a", "q r"}
		}, nil, `model.merges[1]`),
		Entry("malformed merge", func(j map[string]any) {
			j["model"].(map[string]any)["merges"] = []any{"▁ a b"}
		}, nil, `model.merges[0]`),
		Entry("normalizer", func(j map[string]any) { j["normalizer"] = map[string]any{"type": "NFKC"} }, nil, `normalizer type "NFKC"`),
		Entry("pre-tokenizer", func(j map[string]any) { j["pre_tokenizer"] = map[string]any{"type": "ByteLevel"} }, nil, `pre_tokenizer type "ByteLevel"`),
		Entry("decoder order", func(j map[string]any) {
			j["decoder"] = map[string]any{"type": "Sequence", "decoders": []any{
				map[string]any{"type": "Fuse"}, map[string]any{"type": "ByteFallback"}}}
		}, nil, `decoders[1] ByteFallback`),
		Entry("unk token", func(j map[string]any) { j["model"].(map[string]any)["unk_token"] = "<nope>" }, nil, `model.unk_token "<nope>"`),
		Entry("added token options", func(j map[string]any) {
			j["added_tokens"] = []any{map[string]any{"id": 1, "content": "<s>", "lstrip": true}}
		}, nil, `added_tokens "<s>"`),
		Entry("config field type", func(j map[string]any) {}, map[string]any{"add_bos_token": "yes"}, `tokenizer_config.json: field add_bos_token`),
		Entry("config bos token", func(j map[string]any) {}, map[string]any{"bos_token": "<bos>"}, `bos_token "<bos>"`),
	)

	It("refuses a missing file and broken JSON", func() {
		_, err := tokenizer.Load(filepath.Join(GinkgoT().TempDir(), "tokenizer.json"))
		Expect(err).To(MatchError(ContainSubstring("tokenizer.json")))
		dir := GinkgoT().TempDir()
		path := filepath.Join(dir, "tokenizer.json")
		Expect(os.WriteFile(path, []byte(`{"model": {"type": "BPE", "vocab": {`), 0o644)).To(Succeed())
		_, err = tokenizer.Load(dir) // a directory holding tokenizer.json
		Expect(err).To(MatchError(ContainSubstring(path)))
	})
})
