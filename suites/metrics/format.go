package metrics

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// FormatRules are the format checks for one task's outputs. They are data:
// task files carry them (see suites/tasks), so a new task needs no code.
// Each rule that is set must hold; the zero value accepts everything.
type FormatRules struct {
	// NonEmpty: the output has a non-space character.
	NonEmpty bool `json:"non_empty,omitempty"`
	// SingleLine: the output, trimmed, has no line break.
	SingleLine bool `json:"single_line,omitempty"`
	// MinWords and MaxWords bound the word count (0: no bound).
	MinWords int `json:"min_words,omitempty"`
	MaxWords int `json:"max_words,omitempty"`
	// Forbid lists substrings that must not occur anywhere, e.g. chat markers.
	Forbid []string `json:"forbid,omitempty"`
	// ForbidPrefixes lists strings the output must not start with (after
	// leading spaces), e.g. the "###>" translation marker for a chat answer.
	ForbidPrefixes []string `json:"forbid_prefixes,omitempty"`
	// ForbidPatterns are Go regular expressions that must not match.
	ForbidPatterns []string `json:"forbid_patterns,omitempty"`
	// RequirePatterns are Go regular expressions that must match.
	RequirePatterns []string `json:"require_patterns,omitempty"`
	// NotCopyOf bounds the overlap with input fields: a translation must not
	// copy its French source, a chat answer must not carry on the question.
	NotCopyOf []CopyRule `json:"not_copy_of,omitempty"`
	// Language, "en" or "fr", requires the output's function words (if it has
	// any) to be mostly of that language: "not continuing the French".
	Language string `json:"language,omitempty"`
}

// CopyRule bounds how much of the output repeats a record field.
type CopyRule struct {
	// Field names the record field (e.g. "source", "question").
	Field string `json:"field"`
	// MaxOverlap is the largest allowed share of the output's words
	// (case-folded, punctuation trimmed) that occur in the field; 0 means 0.8.
	MaxOverlap float64 `json:"max_overlap,omitempty"`
	// MinWords applies the rule only to outputs of at least this many words,
	// so that a one-word answer that happens to match is not a copy.
	MinWords int `json:"min_words,omitempty"`
}

// Violation is one broken rule.
type Violation struct {
	Rule   string // the rule's field name, e.g. "forbid[1]"
	Detail string
}

func (v Violation) String() string { return v.Rule + ": " + v.Detail }

// FormatChecker applies compiled FormatRules.
type FormatChecker struct {
	rules           FormatRules
	forbid, require []*regexp.Regexp
}

// Compile validates the rules and compiles their patterns. Errors name the
// offending rule, e.g. `forbid_patterns[0]: error parsing regexp: ...`.
func (r FormatRules) Compile() (*FormatChecker, error) {
	c := &FormatChecker{rules: r}
	for _, p := range []struct {
		name string
		src  []string
		dst  *[]*regexp.Regexp
	}{{"forbid_patterns", r.ForbidPatterns, &c.forbid}, {"require_patterns", r.RequirePatterns, &c.require}} {
		for i, s := range p.src {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", p.name, i, err)
			}
			*p.dst = append(*p.dst, re)
		}
	}
	for i, s := range r.Forbid {
		if s == "" {
			return nil, fmt.Errorf("forbid[%d]: empty string", i)
		}
	}
	for i, s := range r.ForbidPrefixes {
		if s == "" {
			return nil, fmt.Errorf("forbid_prefixes[%d]: empty string", i)
		}
	}
	for i, cr := range r.NotCopyOf {
		if cr.Field == "" {
			return nil, fmt.Errorf("not_copy_of[%d].field: missing", i)
		}
		if cr.MinWords < 0 {
			return nil, fmt.Errorf("not_copy_of[%d].min_words: want >= 0, got %d", i, cr.MinWords)
		}
		if cr.MaxOverlap < 0 || cr.MaxOverlap > 1 {
			return nil, fmt.Errorf("not_copy_of[%d].max_overlap: want 0..1, got %g", i, cr.MaxOverlap)
		}
	}
	if r.MinWords < 0 || r.MaxWords < 0 || (r.MaxWords > 0 && r.MinWords > r.MaxWords) {
		return nil, fmt.Errorf("min_words/max_words: want 0 <= min <= max, got %d, %d", r.MinWords, r.MaxWords)
	}
	if r.Language != "" && functionWords[r.Language] == nil {
		return nil, fmt.Errorf("language: %q unsupported (want en or fr)", r.Language)
	}
	return c, nil
}

// Check returns the rules output breaks, none if it follows the format.
// fields are the record's fields, for NotCopyOf; a rule naming a field the
// record lacks is not applied.
func (c *FormatChecker) Check(output string, fields map[string]string) []Violation {
	r := c.rules
	var vs []Violation
	add := func(rule, format string, args ...any) {
		vs = append(vs, Violation{Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}
	trimmed := strings.TrimFunc(output, pyIsSpace)
	if r.NonEmpty && trimmed == "" {
		add("non_empty", "the output is empty")
	}
	if r.SingleLine && strings.ContainsAny(trimmed, "\n\r\u2028\u2029\x85") {
		add("single_line", "the output has %d lines", 1+strings.Count(trimmed, "\n"))
	}
	words := WordCount(output)
	if r.MinWords > 0 && words < r.MinWords {
		add("min_words", "%d words, want at least %d", words, r.MinWords)
	}
	if r.MaxWords > 0 && words > r.MaxWords {
		add("max_words", "%d words, want at most %d", words, r.MaxWords)
	}
	for i, s := range r.Forbid {
		if strings.Contains(output, s) {
			add(fmt.Sprintf("forbid[%d]", i), "contains %q", s)
		}
	}
	for i, s := range r.ForbidPrefixes {
		if strings.HasPrefix(trimmed, s) {
			add(fmt.Sprintf("forbid_prefixes[%d]", i), "starts with %q", s)
		}
	}
	for i, re := range c.forbid {
		if loc := re.FindStringIndex(output); loc != nil {
			add(fmt.Sprintf("forbid_patterns[%d]", i), "matches %q at %q", re, output[loc[0]:loc[1]])
		}
	}
	for i, re := range c.require {
		if !re.MatchString(output) {
			add(fmt.Sprintf("require_patterns[%d]", i), "does not match %q", re)
		}
	}
	for i, cr := range r.NotCopyOf {
		src, ok := fields[cr.Field]
		if !ok || words < cr.MinWords {
			continue
		}
		limit := cr.MaxOverlap
		if limit == 0 {
			limit = 0.8
		}
		if ov := WordOverlap(output, src); ov > limit {
			add(fmt.Sprintf("not_copy_of[%d]", i), "%.0f%% of the words come from %s (max %.0f%%)", 100*ov, cr.Field, 100*limit)
		}
	}
	if r.Language != "" {
		if lang, ok := GuessLanguage(output); ok && lang != r.Language {
			add("language", "reads as %s, want %s", lang, r.Language)
		}
	}
	return vs
}

// normWords lower-cases the words of s and trims punctuation around them.
func normWords(s string) []string {
	var out []string
	for _, w := range pyFields(s) {
		w = strings.ToLower(strings.TrimFunc(w, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) }))
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}

// WordOverlap is the share of out's words (lower-cased, punctuation trimmed)
// that also occur in src; 0 when out has no words.
func WordOverlap(out, src string) float64 {
	ow := normWords(out)
	if len(ow) == 0 {
		return 0
	}
	set := make(map[string]bool)
	for _, w := range normWords(src) {
		set[w] = true
	}
	n := 0
	for _, w := range ow {
		if set[w] {
			n++
		}
	}
	return float64(n) / float64(len(ow))
}

// functionWords are frequent words that tell English from French. Words
// that are spelled alike in both ("a", "on", "on", "son") are left out.
var functionWords = map[string]map[string]bool{
	"en": set("the", "and", "is", "are", "of", "to", "in", "it", "that", "this", "with", "for", "you", "was", "be", "not", "have", "has", "from", "by", "or", "can", "which", "an", "your", "what", "how", "its", "will", "use", "used"),
	"fr": set("le", "la", "les", "et", "est", "sont", "un", "une", "des", "du", "de", "pour", "avec", "dans", "que", "qui", "ce", "cette", "vous", "pas", "sur", "au", "aux", "il", "elle", "ne", "être", "été", "votre", "impossible", "fichier", "fichiers"),
}

func set(ws ...string) map[string]bool {
	m := make(map[string]bool, len(ws))
	for _, w := range ws {
		m[w] = true
	}
	return m
}

// GuessLanguage tells "en" from "fr" by counting function words; ok is false
// when text has none of either, or as many of each.
func GuessLanguage(text string) (lang string, ok bool) {
	en, fr := 0, 0
	for _, w := range normWords(text) {
		// French elisions: l'été, d'un, qu'il.
		if i := strings.IndexAny(w, "'’"); i > 0 && i <= 3 {
			if functionWords["fr"][w[:i]+"e"] || w[:i] == "l" || w[:i] == "d" || w[:i] == "qu" {
				fr++
				continue
			}
		}
		if functionWords["en"][w] {
			en++
		}
		if functionWords["fr"][w] {
			fr++
		}
	}
	switch {
	case en > fr:
		return "en", true
	case fr > en:
		return "fr", true
	}
	return "", false
}
