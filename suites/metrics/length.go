package metrics

import (
	"slices"
	"strings"
)

// TruncateAtStop cuts text at the earliest occurrence of any of the stop
// strings (the stop itself is dropped) and returns the kept text and the
// stop that fired ("" when none occurs). Empty stop strings are ignored.
func TruncateAtStop(text string, stops []string) (kept, stop string) {
	cut := len(text)
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 && (i < cut || (i == cut && len(s) > len(stop))) {
			cut, stop = i, s
		}
	}
	return text[:cut], stop
}

// TruncateAtEOS returns ids up to (not including) the first eos.
func TruncateAtEOS[T comparable](ids []T, eos T) []T {
	if i := slices.Index(ids, eos); i >= 0 {
		return ids[:i]
	}
	return ids
}

// Words splits text into whitespace-separated words.
func Words(text string) []string { return pyFields(text) }

// WordCount is the number of whitespace-separated words in text.
func WordCount(text string) int { return len(pyFields(text)) }

// Length is the measured length of one generated response.
type Length struct {
	Tokens int    // tokens of the response, up to EOS or the stop string
	Words  int    // whitespace-separated words of Text
	Text   string // the response text after truncation
	Stop   string // the stop string that ended it, "" if none
	EOS    bool   // whether an EOS token ended it
}

// MeasureLength measures a response given its generated token ids (without
// the prompt): it cuts at the first eos, decodes, cuts the text at the first
// stop string, and counts words in what is left. Tokens is the smallest
// number of leading tokens whose decoding reaches the kept text's length, so
// a token that only carries the stop string is not counted while a token
// that carries answer text before the stop is.
func MeasureLength[T comparable](ids []T, eos T, decode func([]T) string, stops []string) Length {
	kept := TruncateAtEOS(ids, eos)
	l := Length{EOS: len(kept) < len(ids)}
	text := decode(kept)
	l.Text, l.Stop = TruncateAtStop(text, stops)
	l.Words = WordCount(l.Text)
	l.Tokens = len(kept)
	if l.Stop != "" {
		target := len(strings.TrimRightFunc(l.Text, pyIsSpace))
		l.Tokens = 0
		for l.Tokens < len(kept) && len(strings.TrimRightFunc(decode(kept[:l.Tokens]), pyIsSpace)) < target {
			l.Tokens++
		}
	}
	return l
}

// Median returns the median of xs (the mean of the middle two for an even
// count) and 0 for none.
func Median[T ~int | ~float64](xs []T) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return float64(s[n/2])
	}
	return (float64(s[n/2-1]) + float64(s[n/2])) / 2
}
