package tokenizer_test

import (
	"os"
	"strings"
	"testing"

	"loramix/engine/tokenizer"
)

// benchTokenizer loads the real tokenizer for benchmarks (see tokenizerPath).
func benchTokenizer(b *testing.B, opt tokenizer.Options) *tokenizer.Tokenizer {
	b.Helper()
	p := os.Getenv("LORAMIX_TOKENIZER")
	if p == "" {
		p = "../../.cache/tokenizer/tokenizer.json"
	}
	tok, err := tokenizer.LoadWith(p, opt)
	if err != nil {
		b.Fatalf("%v (run `make tokenizer` or set LORAMIX_TOKENIZER)", err)
	}
	return tok
}

// englishText is testdata/english.txt (4 KB of prose) repeated to about 1 MB.
func englishText(b *testing.B) string {
	b.Helper()
	data, err := os.ReadFile("testdata/english.txt")
	if err != nil {
		b.Fatal(err)
	}
	return strings.Repeat(string(data), (1<<20)/len(data))
}

// BenchmarkEncodeEnglish encodes 1 MB of English on one goroutine, with the
// word cache warm (the steady state of a long-running tokenizer).
func BenchmarkEncodeEnglish(b *testing.B) {
	tok := benchTokenizer(b, tokenizer.Options{})
	text := englishText(b)
	tok.Encode(text, true)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.Encode(text, true)
	}
}

// BenchmarkEncodeEnglishNoCache runs BPE on every word (no word cache).
func BenchmarkEncodeEnglishNoCache(b *testing.B) {
	tok := benchTokenizer(b, tokenizer.Options{CacheWords: -1})
	text := englishText(b)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text, true)
	}
}

// BenchmarkEncodeEnglishLines encodes the text one line at a time, as the
// tokenize command does.
func BenchmarkEncodeEnglishLines(b *testing.B) {
	tok := benchTokenizer(b, tokenizer.Options{})
	lines := strings.Split(englishText(b), "\n")
	b.SetBytes(int64(len(strings.Join(lines, "\n"))))
	for b.Loop() {
		for _, l := range lines {
			tok.Encode(l, true)
		}
	}
}

func BenchmarkDecodeEnglish(b *testing.B) {
	tok := benchTokenizer(b, tokenizer.Options{})
	text := englishText(b)
	ids := tok.Encode(text, true)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Decode(ids)
	}
}
