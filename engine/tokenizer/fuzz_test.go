package tokenizer_test

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"loramix/engine/tokenizer"
)

var fuzzTok struct {
	once sync.Once
	tok  *tokenizer.Tokenizer
	err  error
}

// FuzzEncode checks, on the real tokenizer, that cutting text into words
// never changes the ids, and that Decode gives back text that the
// normalization does not alter (valid UTF-8, no '▁', no added token, no
// leading space).
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"Hello world", "  a  b  ", "日本語のテキスト", "😀 x", "a\tb\nc", "<s>x</s>", "▁x", "\xff\xfe", "x  "} {
		f.Add(s)
	}
	fuzzTok.once.Do(func() {
		p := os.Getenv("LORAMIX_TOKENIZER")
		if p == "" {
			p = "../../.cache/tokenizer/tokenizer.json"
		}
		fuzzTok.tok, fuzzTok.err = tokenizer.LoadWith(p, tokenizer.Options{CacheWords: -1})
	})
	if fuzzTok.err != nil {
		f.Fatalf("%v (run `make tokenizer` or set LORAMIX_TOKENIZER)", fuzzTok.err)
	}
	tok := fuzzTok.tok
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, false)
		if whole := tok.EncodeWhole(s); !slices.Equal(ids, whole) {
			t.Fatalf("%q: words %v, whole %v", s, ids, whole)
		}
		if !utf8.ValidString(s) || strings.Contains(s, "▁") || strings.HasPrefix(s, " ") ||
			strings.Contains(s, "<s>") || strings.Contains(s, "</s>") || strings.Contains(s, "<unk>") {
			return
		}
		if got := tok.Decode(ids); got != s {
			t.Fatalf("%q: decoded %q from %v", s, got, ids)
		}
	})
}
