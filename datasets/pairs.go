package datasets

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pair is one French→English sentence pair, as written to fren/*.jsonl.
type Pair struct {
	Source string `json:"source"` // French
	Target string `json:"target"` // English
}

// Split names a partition of a corpus.
type Split string

const (
	Train Split = "train"
	Dev   Split = "dev"
	Test  Split = "test"
)

// Splits lists the partitions in the order they are written.
var Splits = []Split{Train, Dev, Test}

// Splitter assigns keys to splits deterministically: the first 8 bytes of
// sha256(Salt + key), taken modulo 10,000, fall in test below TestPer10k, in
// dev below TestPer10k+DevPer10k, and in train otherwise.
type Splitter struct {
	Salt       string
	DevPer10k  int
	TestPer10k int
}

// Of returns the split of key.
func (s Splitter) Of(key string) Split {
	h := sha256.Sum256([]byte(s.Salt + key))
	b := int(binary.BigEndian.Uint64(h[:8]) % 10000)
	switch {
	case b < s.TestPer10k:
		return Test
	case b < s.TestPer10k+s.DevPer10k:
		return Dev
	}
	return Train
}

// NormKey is the key used to deduplicate and split: lower case with
// whitespace collapsed.
func NormKey(s string) string { return strings.ToLower(collapseSpace(s)) }

// Dedupe keeps the first pair for each normalized source and drops the rest.
func Dedupe(pairs []Pair) []Pair {
	seen := make(map[string]bool, len(pairs))
	out := pairs[:0:0]
	for _, p := range pairs {
		k := NormKey(p.Source)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, p)
	}
	return out
}

// PairLimits bounds the length of a kept pair, in whitespace-separated words.
type PairLimits struct {
	MinWords, MaxWords int // both sides
}

// DefaultPairLimits keeps single sentences of 3 to 30 words.
var DefaultPairLimits = PairLimits{MinWords: 3, MaxWords: 30}

// CleanPair turns a catalog (msgid, msgstr) or a pair of summaries into a
// training pair (French source, English target), or reports ok=false when the
// pair should be dropped: multi-line text, format directives or markup
// (%, {, }, $, <, >, \, _ after mnemonic removal), untranslated copies, text
// without letters, lengths outside lim, or a character-length ratio outside
// [1/3, 3].
func CleanPair(english, french string, lim PairLimits) (Pair, bool) {
	if strings.ContainsAny(english+french, "\n\r\t") {
		return Pair{}, false
	}
	en := collapseSpace(stripMnemonic(english))
	fr := collapseSpace(stripMnemonic(french))
	if en == "" || fr == "" || hasDirective(en) || hasDirective(fr) {
		return Pair{}, false
	}
	if strings.EqualFold(en, fr) || !hasLetter(en) || !hasLetter(fr) {
		return Pair{}, false
	}
	for _, s := range []string{en, fr} {
		if n := len(strings.Fields(s)); n < lim.MinWords || n > lim.MaxWords {
			return Pair{}, false
		}
	}
	le, lf := utf8.RuneCountInString(en), utf8.RuneCountInString(fr)
	if lf*3 < le || lf > 3*le {
		return Pair{}, false
	}
	return Pair{Source: fr, Target: en}, true
}

// IsFormatOnly reports whether s holds nothing but format directives,
// punctuation and spaces (such as "%s: %d" or "{0}").
func IsFormatOnly(s string) bool {
	rest := stripDirectives(s)
	return !hasLetter(rest)
}

// stripDirectives removes printf directives (%s, %1$d, %-10.3lu, %%) and brace
// placeholders ({0}, {name}) from s.
func stripDirectives(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			j := i + 1
			for j < len(s) && strings.IndexByte("0123456789$#-+ .'lhLqjzt*I", s[j]) >= 0 {
				j++
			}
			if j < len(s) {
				i = j // skip the conversion letter too
				continue
			}
		case '{':
			if k := strings.IndexByte(s[i:], '}'); k >= 0 {
				i += k
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func hasDirective(s string) bool { return strings.ContainsAny(s, "%{}$<>\\_@|") }

func hasLetter(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) {
			return true
		}
	}
	return false
}

// stripMnemonic removes a single keyboard-accelerator marker ("_Open", "&Save")
// that precedes a letter or digit. Strings with several markers are left as
// they are (they are then dropped as markup).
func stripMnemonic(s string) string {
	for _, m := range []string{"_", "&"} {
		if strings.Count(s, m) != 1 {
			continue
		}
		i := strings.Index(s, m)
		r, _ := utf8.DecodeRuneInString(s[i+1:])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			s = s[:i] + s[i+1:]
		}
	}
	return s
}
