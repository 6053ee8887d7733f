package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ReportOptions selects what Report prints, mirroring sacreBLEU's command
// line (`sacrebleu REF... -i HYP -m ... -f text|json -w W [-sl] [-b] [-ci]`).
type ReportOptions struct {
	// Metrics to compute, printed in this order. Empty means BLEU.
	Metrics []Metric
	// Sentence prints one line per segment (one metric only); BLEU then uses
	// effective order, as sacreBLEU's --sentence-level does.
	Sentence bool
	// Width is the number of decimals.
	Width int
	// JSON selects sacreBLEU's JSON output for corpus scores.
	JSON bool
	// ScoreOnly prints only the numbers.
	ScoreOnly bool
	// Confidence adds a bootstrap mean and 95% half-width (corpus scores),
	// with Samples resamples (DefaultResamples if 0) seeded by Seed.
	Confidence bool
	Samples    int
	Seed       uint64
}

// Report scores hyps against reference streams (refs[k][i] is the k-th
// reference of segment i) and returns what sacreBLEU's command line prints,
// newline-terminated: one score line per metric (aligned on " = " when there
// are several), or one line per segment with Sentence.
func Report(hyps []string, refs [][]string, o ReportOptions) (string, error) {
	ms := o.Metrics
	if len(ms) == 0 {
		ms = []Metric{BLEU{}}
	}
	if len(hyps) == 0 {
		return "", errors.New("metrics: report: the hypothesis file has no lines")
	}
	if o.Sentence {
		if len(ms) != 1 {
			return "", errors.New("metrics: report: sentence-level scores take exactly one metric")
		}
		if o.Confidence {
			return "", errors.New("metrics: report: confidence intervals are unavailable at sentence level")
		}
		m := ms[0]
		if b, ok := m.(BLEU); ok {
			b.EffectiveOrder = true
			m = b
		}
		stats, err := CorpusStats(m, hyps, refs)
		if err != nil {
			return "", err
		}
		var out strings.Builder
		for _, st := range stats {
			l := scoreLine(m, st, len(refs))
			if o.ScoreOnly {
				out.WriteString(formatScoreOnly(l, o.Width) + "\n")
			} else {
				out.WriteString(FormatScore(l, o.Width) + "\n")
			}
		}
		return out.String(), nil
	}

	results := make([]string, 0, len(ms))
	for _, m := range ms {
		stats, err := CorpusStats(m, hyps, refs)
		if err != nil {
			return "", err
		}
		l := scoreLine(m, SumStats(stats), len(refs))
		if o.Confidence {
			n := o.Samples
			if n == 0 {
				n = DefaultResamples
			}
			ci, err := Bootstrap(m, stats, n, o.Seed)
			if err != nil {
				return "", err
			}
			l.Mean, l.HalfWidth = ci.Mean, ci.HalfWidth
			l.Signature = withBootstrap(l.Signature, n, o.Seed)
		}
		switch {
		case o.ScoreOnly:
			results = append(results, formatScoreOnly(l, o.Width))
		case o.JSON:
			results = append(results, formatJSON(l, o.Width))
		default:
			results = append(results, FormatScore(l, o.Width))
		}
	}
	if o.JSON {
		if len(results) == 1 {
			return results[0] + "\n", nil
		}
		return "[\n" + strings.Join(results, ",\n") + "\n]\n", nil
	}
	return alignOnEquals(results), nil
}

// scoreLine scores summed statistics with m and returns the printable line.
func scoreLine(m Metric, stats []int, nrefs int) Line {
	switch b := m.(type) {
	case BLEU:
		return b.FromStats(stats, nrefs).Line()
	case CHRF:
		return CHRFScore{Score: b.ScoreStats(stats), CHRF: b, NRefs: nrefs}.Line()
	}
	return Line{Name: m.Name(), Score: m.ScoreStats(stats), Signature: m.Signature(nrefs)}
}

// withBootstrap inserts sacreBLEU's "bs:N|seed:S" after the nrefs field.
func withBootstrap(sig string, n int, seed uint64) string {
	first, rest, _ := strings.Cut(sig, "|")
	return fmt.Sprintf("%s|bs:%d|seed:%d|%s", first, n, seed, rest)
}

// alignOnEquals right-aligns the text before the first '=' of each line, as
// sacreBLEU does for several metrics; lines without '=' print as they are.
func alignOnEquals(lines []string) string {
	var out strings.Builder
	w := 0
	for _, l := range lines {
		if i := strings.Index(l, "="); i >= 0 {
			w = max(w, len([]rune(l[:i]))-1)
		}
	}
	for _, l := range lines {
		i := strings.Index(l, "=")
		if len(lines) == 1 || i < 0 {
			out.WriteString(l + "\n")
			continue
		}
		left := l[:i-1]
		out.WriteString(strings.Repeat(" ", max(0, w-len([]rune(left)))) + left + l[i-1:] + "\n")
	}
	return out.String()
}

// formatJSON renders a score as sacreBLEU's json.dumps(indent=1) object.
func formatJSON(l Line, width int) string {
	type kv struct{ k, v string }
	rounded, _ := strconv.ParseFloat(fmtF(l.Score, width), 64)
	fields := []kv{{"name", jsonString(l.Name)}, {"score", pyFloatRepr(rounded)}, {"signature", jsonString(l.Signature)}}
	if l.Mean > 0 {
		m, _ := strconv.ParseFloat(fmtF(l.Mean, width), 64)
		c, _ := strconv.ParseFloat(fmtF(l.HalfWidth, width), 64)
		fields = append(fields, kv{"confidence_mean", pyFloatRepr(m)}, kv{"confidence_var", pyFloatRepr(c)},
			kv{"confidence", jsonString(fmt.Sprintf("μ = %s ± %s", fmtF(l.Mean, width), fmtF(l.HalfWidth, width)))})
	}
	if l.Verbose != "" {
		fields = append(fields, kv{"verbose_score", jsonString(l.Verbose)})
	}
	for _, p := range strings.Split(l.Signature, "|") {
		k, v, _ := strings.Cut(p, ":")
		fields = append(fields, kv{k, jsonString(v)})
	}
	var b strings.Builder
	b.WriteString("{\n")
	for i, f := range fields {
		b.WriteString(" " + jsonString(f.k) + ": " + f.v)
		if i < len(fields)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("}")
	return b.String()
}

// jsonString quotes s like Python's json.dumps with ensure_ascii=False.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// pyFloatRepr formats x like Python's repr(float).
func pyFloatRepr(x float64) string {
	if x == 0 {
		if math.Signbit(x) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(x); a < 1e-4 || a >= 1e16 {
		mant, exp, _ := strings.Cut(strconv.FormatFloat(x, 'e', -1, 64), "e")
		return mant + "e" + exp
	}
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// fmtF formats x with width decimals, rounding half to even on the exact
// binary value as Python's format does.
func fmtF(x float64, width int) string { return strconv.FormatFloat(x, 'f', width, 64) }

// SplitLines splits the contents of a text file into segments the way
// sacreBLEU's command line reads them: lines end at '\n' only, a final '\n'
// ends the last line, and trailing (Python) whitespace is stripped.
func SplitLines(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	parts := strings.Split(string(data), "\n")
	for i, p := range parts {
		parts[i] = pyRStrip(p)
	}
	return parts
}
