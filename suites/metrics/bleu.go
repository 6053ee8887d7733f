package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxNGramOrder is BLEU's highest n-gram order (sacreBLEU's default).
const MaxNGramOrder = 4

// Version is the sacreBLEU release whose numbers and signatures this package
// reproduces; it appears in every signature.
const Version = "2.6.0"

// BLEU is sacreBLEU's BLEU with its defaults: 13a tokenization, mixed case,
// n-grams 1..4, "exp" smoothing, closest reference length. The zero value is
// the corpus-level metric; sentence-level BLEU sets EffectiveOrder, which
// averages only over the n-gram orders the hypothesis has.
type BLEU struct {
	EffectiveOrder bool
}

// BLEUScore is a BLEU result with the statistics it came from, formatted the
// way sacreBLEU prints it.
type BLEUScore struct {
	Score          float64                // 0..100
	Counts         [MaxNGramOrder]int     // matched n-grams per order
	Totals         [MaxNGramOrder]int     // hypothesis n-grams per order
	Precisions     [MaxNGramOrder]float64 // 0..100 (smoothed); all 0 when nothing matched
	BP             float64                // brevity penalty
	SysLen, RefLen int                    // tokens in hypotheses / closest references
	EffectiveOrder bool
	NRefs          int
}

// Name returns "BLEU".
func (BLEU) Name() string { return "BLEU" }

// Signature returns sacreBLEU's signature for nrefs references, e.g.
// "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0".
func (m BLEU) Signature(nrefs int) string {
	return fmt.Sprintf("nrefs:%d|case:mixed|eff:%s|tok:13a|smooth:exp|version:%s", nrefs, yesNo(m.EffectiveOrder), Version)
}

// SegmentStats returns the sufficient statistics of one hypothesis against
// its references: [hyp_len, ref_len, correct_1..4, total_1..4], where
// ref_len is the reference length closest to hyp_len (the shorter on ties)
// and matches are clipped by the maximum count over the references.
func (m BLEU) SegmentStats(hyp string, refs []string) []int {
	var refNgrams map[string]int
	refLens := make([]int, 0, len(refs))
	for _, r := range refs {
		ng, n := wordNgrams(pyFields(Tokenize13a(pyRStrip(r))), MaxNGramOrder)
		refLens = append(refLens, n)
		if refNgrams == nil {
			refNgrams = ng
			continue
		}
		for k, c := range ng {
			refNgrams[k] = max(refNgrams[k], c)
		}
	}
	toks := pyFields(Tokenize13a(pyRStrip(hyp)))
	hypNgrams, hypLen := wordNgrams(toks, MaxNGramOrder)

	st := make([]int, 2+2*MaxNGramOrder)
	st[0], st[1] = hypLen, closestRefLen(hypLen, refLens)
	for k, c := range hypNgrams {
		n := strings.Count(k, " ") // order-1
		st[2+MaxNGramOrder+n] += c
		if rc, ok := refNgrams[k]; ok {
			st[2+n] += min(c, rc)
		}
	}
	return st
}

// wordNgrams counts the n-grams of orders 1..maxOrder of toks (tokens hold no
// spaces, so joining by a space is unambiguous) and returns len(toks).
func wordNgrams(toks []string, maxOrder int) (map[string]int, int) {
	counts := make(map[string]int, len(toks)*maxOrder)
	for n := 1; n <= maxOrder; n++ {
		for i := 0; i+n <= len(toks); i++ {
			counts[strings.Join(toks[i:i+n], " ")]++
		}
	}
	return counts, len(toks)
}

func closestRefLen(hypLen int, refLens []int) int {
	bestDiff, best := -1, -1
	for _, r := range refLens {
		d := hypLen - r
		if d < 0 {
			d = -d
		}
		if bestDiff == -1 || d < bestDiff || (d == bestDiff && r < best) {
			bestDiff, best = d, r
		}
	}
	return best
}

// ScoreStats returns the BLEU score of summed statistics.
func (m BLEU) ScoreStats(stats []int) float64 { return m.FromStats(stats, 1).Score }

// FromStats computes BLEU from summed statistics (the layout of
// SegmentStats), with sacreBLEU's exp smoothing: the k-th order with no match
// gets precision 100/(2^k * total). Without EffectiveOrder an order with no
// hypothesis n-grams contributes log 0, floored, which zeroes the score.
func (m BLEU) FromStats(stats []int, nrefs int) BLEUScore {
	s := BLEUScore{SysLen: stats[0], RefLen: stats[1], EffectiveOrder: m.EffectiveOrder, NRefs: nrefs}
	copy(s.Counts[:], stats[2:2+MaxNGramOrder])
	copy(s.Totals[:], stats[2+MaxNGramOrder:2+2*MaxNGramOrder])

	s.BP = 1.0
	if s.SysLen < s.RefLen {
		s.BP = 0
		if s.SysLen > 0 {
			s.BP = math.Exp(1 - float64(s.RefLen)/float64(s.SysLen))
		}
	}
	anyMatch := false
	for _, c := range s.Counts {
		anyMatch = anyMatch || c != 0
	}
	if !anyMatch {
		return s
	}
	smooth := 1.0
	eff := MaxNGramOrder
	for n := 1; n <= MaxNGramOrder; n++ {
		c, t := s.Counts[n-1], s.Totals[n-1]
		if t == 0 {
			break
		}
		if m.EffectiveOrder {
			eff = n
		}
		if c == 0 {
			smooth *= 2
			s.Precisions[n-1] = 100. / (smooth * float64(t))
		} else {
			s.Precisions[n-1] = 100. * float64(c) / float64(t)
		}
	}
	logs := make([]float64, eff)
	for i, p := range s.Precisions[:eff] {
		logs[i] = flooredLog(p)
	}
	s.Score = s.BP * math.Exp(pySum(logs)/float64(eff))
	return s
}

// flooredLog is log(p), with log(0) floored to -9999999999 as sacreBLEU does.
func flooredLog(p float64) float64 {
	if p == 0 {
		return -9999999999
	}
	return math.Log(p)
}

// pySum adds xs the way CPython (3.12 and later) sum() adds floats: with
// Neumaier compensation, the compensation applied once at the end.
func pySum(xs []float64) float64 {
	sum, c := 0.0, 0.0
	for _, x := range xs {
		t := sum + x
		if math.Abs(sum) >= math.Abs(x) {
			c += (sum - t) + x
		} else {
			c += (x - t) + sum
		}
		sum = t
	}
	if c != 0 && !math.IsInf(c, 0) && !math.IsNaN(c) {
		sum += c
	}
	return sum
}

// Corpus scores hyps against reference streams (refs[k][i] is the k-th
// reference of segment i). It errors when there are no hypotheses, no
// streams, or a stream's length differs from len(hyps).
func (m BLEU) Corpus(hyps []string, refs [][]string) (BLEUScore, error) {
	stats, err := CorpusStats(m, hyps, refs)
	if err != nil {
		return BLEUScore{}, err
	}
	return m.FromStats(SumStats(stats), len(refs)), nil
}

// Sentence scores one hypothesis against its references.
func (m BLEU) Sentence(hyp string, refs ...string) BLEUScore {
	return m.FromStats(m.SegmentStats(hyp, refs), len(refs))
}

// CorpusBLEU is sacreBLEU's corpus_bleu with default arguments.
func CorpusBLEU(hyps []string, refs ...[]string) (BLEUScore, error) {
	return BLEU{}.Corpus(hyps, refs)
}

// SentenceBLEU is sacreBLEU's sentence_bleu with default arguments
// (effective order on).
func SentenceBLEU(hyp string, refs ...string) BLEUScore {
	return BLEU{EffectiveOrder: true}.Sentence(hyp, refs...)
}

// Ratio is hyp_len / ref_len, 0 when ref_len is 0.
func (s BLEUScore) Ratio() float64 {
	if s.RefLen == 0 {
		return 0
	}
	return float64(s.SysLen) / float64(s.RefLen)
}

// Verbose is the part of sacreBLEU's line after the score:
// "84.1/70.3/60.0/54.2 (BP = 0.978 ratio = 0.978 hyp_len = 44 ref_len = 45)".
func (s BLEUScore) Verbose() string {
	p := make([]string, len(s.Precisions))
	for i, x := range s.Precisions {
		p[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return fmt.Sprintf("%s (BP = %s ratio = %s hyp_len = %d ref_len = %d)", strings.Join(p, "/"),
		strconv.FormatFloat(s.BP, 'f', 3, 64), strconv.FormatFloat(s.Ratio(), 'f', 3, 64), s.SysLen, s.RefLen)
}

// Signature is the metric's sacreBLEU signature.
func (s BLEUScore) Signature() string {
	return BLEU{EffectiveOrder: s.EffectiveOrder}.Signature(s.NRefs)
}

// Format renders the score line with width decimals and no signature, e.g.
// "BLEU = 64.71 84.1/70.3/60.0/54.2 (BP = 0.978 ratio = 0.978 hyp_len = 44 ref_len = 45)".
func (s BLEUScore) Format(width int) string {
	return FormatScore(Line{Name: "BLEU", Score: s.Score, Verbose: s.Verbose()}, width)
}

// String is Format(2), sacreBLEU's repr of a BLEUScore.
func (s BLEUScore) String() string { return s.Format(2) }

// Line returns the score as a Line carrying its signature, for FormatScore.
func (s BLEUScore) Line() Line {
	return Line{Name: "BLEU", Score: s.Score, Verbose: s.Verbose(), Signature: s.Signature()}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
