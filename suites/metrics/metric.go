package metrics

import (
	"fmt"
	"strings"
)

// Metric is a corpus metric computed from additive per-segment sufficient
// statistics, which is what makes bootstrap resampling cheap. BLEU and CHRF
// implement it.
type Metric interface {
	// Name is the metric's display name ("BLEU", "chrF2", "chrF2++").
	Name() string
	// Signature is sacreBLEU's signature for nrefs references.
	Signature(nrefs int) string
	// SegmentStats returns one segment's statistics against its references.
	SegmentStats(hyp string, refs []string) []int
	// ScoreStats turns statistics summed over segments into a score.
	ScoreStats(stats []int) float64
}

// CorpusStats returns the per-segment statistics of hyps against reference
// streams (refs[k][i] is the k-th reference of segment i). It errors when
// there are no hypotheses or streams, or when a stream's length differs.
func CorpusStats(m Metric, hyps []string, refs [][]string) ([][]int, error) {
	if len(hyps) == 0 {
		return nil, fmt.Errorf("metrics: %s: no hypotheses", m.Name())
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("metrics: %s: no references", m.Name())
	}
	for k, r := range refs {
		if len(r) != len(hyps) {
			return nil, fmt.Errorf("metrics: %s: reference stream %d has %d segments, hypotheses have %d", m.Name(), k+1, len(r), len(hyps))
		}
	}
	stats := make([][]int, len(hyps))
	segRefs := make([]string, len(refs))
	for i, h := range hyps {
		for k := range refs {
			segRefs[k] = refs[k][i]
		}
		stats[i] = m.SegmentStats(h, segRefs)
	}
	return stats, nil
}

// SumStats adds per-segment statistics element-wise. It panics if the rows
// differ in length or there are none.
func SumStats(stats [][]int) []int {
	sum := make([]int, len(stats[0]))
	for _, s := range stats {
		if len(s) != len(sum) {
			panic("metrics: SumStats: rows of different lengths")
		}
		for j, x := range s {
			sum[j] += x
		}
	}
	return sum
}

// Line is one printable score in sacreBLEU's layout.
type Line struct {
	Name      string  // "BLEU", "chrF2", "chrF2++"
	Score     float64 // 0..100
	Verbose   string  // BLEU's precisions and lengths; empty for chrF
	Signature string  // empty to leave it out
	// Mean and HalfWidth, when Mean > 0, print as " (μ = mean ± halfwidth)",
	// sacreBLEU's bootstrap confidence display.
	Mean, HalfWidth float64
}

// FormatScore renders l as sacreBLEU's Score.format does:
// "NAME[|SIGNATURE] = SCORE[ (μ = MEAN ± CI)][ VERBOSE]" with width decimals.
func FormatScore(l Line, width int) string {
	var b strings.Builder
	b.WriteString(l.Name)
	if l.Signature != "" {
		b.WriteString("|" + l.Signature)
	}
	b.WriteString(" = " + formatScoreOnly(l, width))
	if l.Verbose != "" {
		b.WriteString(" " + l.Verbose)
	}
	return b.String()
}

// formatScoreOnly is the score with its optional confidence, sacreBLEU's
// --score-only output.
func formatScoreOnly(l Line, width int) string {
	s := fmtF(l.Score, width)
	if l.Mean > 0 {
		s += fmt.Sprintf(" (μ = %s ± %s)", fmtF(l.Mean, width), fmtF(l.HalfWidth, width))
	}
	return s
}
