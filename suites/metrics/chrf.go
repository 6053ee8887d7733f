package metrics

import (
	"fmt"
	"strings"
)

// CHRF is sacreBLEU's chrF: the F-beta score of character n-grams of orders
// 1..CharOrder (whitespace removed) and, for chrF++, word n-grams of orders
// 1..WordOrder (with punctuation split off word edges). It uses sacreBLEU's
// default "effective order" averaging: precision and recall are averaged
// over the orders where both the hypothesis and the reference have n-grams,
// then combined into one F-beta. Case-sensitive.
type CHRF struct {
	CharOrder, WordOrder, Beta int
}

// ChrF is chrF2 with sacreBLEU's defaults (char order 6, word order 0, beta 2).
var ChrF = CHRF{CharOrder: 6, WordOrder: 0, Beta: 2}

// ChrFPlusPlus is chrF2++ (word order 2).
var ChrFPlusPlus = CHRF{CharOrder: 6, WordOrder: 2, Beta: 2}

// CHRFScore is a chrF result.
type CHRFScore struct {
	Score float64 // 0..100
	CHRF
	NRefs int
}

// Name is sacreBLEU's name for the metric: "chrF2", or "chrF2++" with word order 2.
func (m CHRF) Name() string { return fmt.Sprintf("chrF%d", m.Beta) + strings.Repeat("+", m.WordOrder) }

// Signature returns sacreBLEU's signature for nrefs references, e.g.
// "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0".
func (m CHRF) Signature(nrefs int) string {
	return fmt.Sprintf("nrefs:%d|case:mixed|eff:yes|nc:%d|nw:%d|space:no|version:%s", nrefs, m.CharOrder, m.WordOrder, Version)
}

func (m CHRF) order() int { return m.CharOrder + m.WordOrder }

// SegmentStats returns, for each order (characters 1..CharOrder, then words
// 1..WordOrder), the triple [hyp n-grams, ref n-grams, matches] against the
// reference with the best F score (the first one on ties). An order where
// the reference has no n-grams counts no hypothesis n-grams either.
func (m CHRF) SegmentStats(hyp string, refs []string) []int {
	h := m.ngrams(hyp)
	var best []int
	bestF := -1.0
	for _, r := range refs {
		rn := m.ngrams(r)
		st := make([]int, 0, 3*m.order())
		for i := range h {
			st = append(st, matchStats(h[i], rn[i])...)
		}
		if f := m.ScoreStats(st); f > bestF {
			bestF, best = f, st
		}
	}
	return best
}

// ngrams returns the n-gram counts of every order of one segment.
func (m CHRF) ngrams(s string) []map[string]int {
	out := make([]map[string]int, 0, m.order())
	chars := []rune(strings.Join(pyFields(s), ""))
	for n := 1; n <= m.CharOrder; n++ {
		c := make(map[string]int, len(chars))
		for i := 0; i+n <= len(chars); i++ {
			c[string(chars[i:i+n])]++
		}
		out = append(out, c)
	}
	if m.WordOrder > 0 {
		words := splitPunct(s)
		for n := 1; n <= m.WordOrder; n++ {
			c := make(map[string]int, len(words))
			for i := 0; i+n <= len(words); i++ {
				c[strings.Join(words[i:i+n], " ")]++
			}
			out = append(out, c)
		}
	}
	return out
}

func matchStats(hyp, ref map[string]int) []int {
	match, nh, nr := 0, 0, 0
	for k, c := range hyp {
		nh += c
		if rc, ok := ref[k]; ok {
			match += min(c, rc)
		}
	}
	for _, c := range ref {
		nr += c
	}
	if len(ref) == 0 {
		nh = 0
	}
	return []int{nh, nr, match}
}

// splitPunct is chrF++'s word tokenization: whitespace-split words longer
// than one character lose one ASCII punctuation mark, from the end if there
// is one there, else from the start, which becomes its own word.
func splitPunct(s string) []string {
	var out []string
	for _, w := range pyFields(s) {
		rs := []rune(w)
		switch {
		case len(rs) == 1:
			out = append(out, w)
		case isASCIIPunct(rs[len(rs)-1]):
			out = append(out, string(rs[:len(rs)-1]), string(rs[len(rs)-1]))
		case isASCIIPunct(rs[0]):
			out = append(out, string(rs[0]), string(rs[1:]))
		default:
			out = append(out, w)
		}
	}
	return out
}

func isASCIIPunct(r rune) bool {
	return strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r)
}

// ScoreStats turns summed statistics into chrF in 0..100 with sacreBLEU's
// effective-order averaging.
func (m CHRF) ScoreStats(stats []int) float64 {
	factor := float64(m.Beta * m.Beta)
	avgP, avgR, eff := 0.0, 0.0, 0
	for i := 0; i < m.order(); i++ {
		nh, nr, nm := stats[3*i], stats[3*i+1], stats[3*i+2]
		if nh > 0 && nr > 0 {
			avgP += float64(nm) / float64(nh)
			avgR += float64(nm) / float64(nr)
			eff++
		}
	}
	if eff == 0 {
		return 0
	}
	avgP /= float64(eff)
	avgR /= float64(eff)
	if avgP+avgR == 0 {
		return 0
	}
	score := (1 + factor) * avgP * avgR
	score /= factor*avgP + avgR
	return 100 * score
}

// Corpus scores hyps against reference streams (refs[k][i] is the k-th
// reference of segment i) by summing the segments' statistics.
func (m CHRF) Corpus(hyps []string, refs [][]string) (CHRFScore, error) {
	stats, err := CorpusStats(m, hyps, refs)
	if err != nil {
		return CHRFScore{}, err
	}
	return CHRFScore{Score: m.ScoreStats(SumStats(stats)), CHRF: m, NRefs: len(refs)}, nil
}

// Sentence scores one hypothesis against its references.
func (m CHRF) Sentence(hyp string, refs ...string) CHRFScore {
	return CHRFScore{Score: m.ScoreStats(m.SegmentStats(hyp, refs)), CHRF: m, NRefs: len(refs)}
}

// CorpusCHRF is sacreBLEU's corpus_chrf with default arguments (chrF2).
func CorpusCHRF(hyps []string, refs ...[]string) (CHRFScore, error) { return ChrF.Corpus(hyps, refs) }

// SentenceCHRF is sacreBLEU's sentence_chrf with default arguments (chrF2).
func SentenceCHRF(hyp string, refs ...string) CHRFScore { return ChrF.Sentence(hyp, refs...) }

// Signature is the metric's sacreBLEU signature.
func (s CHRFScore) Signature() string { return s.CHRF.Signature(s.NRefs) }

// Format renders "chrF2 = 57.21" with width decimals.
func (s CHRFScore) Format(width int) string {
	return FormatScore(Line{Name: s.Name(), Score: s.Score}, width)
}

// String is Format(2).
func (s CHRFScore) String() string { return s.Format(2) }

// Line returns the score as a Line carrying its signature, for FormatScore.
func (s CHRFScore) Line() Line { return Line{Name: s.Name(), Score: s.Score, Signature: s.Signature()} }
