// Package matchers holds the Gomega matchers that loramix users import in
// their own suites:
//
//	Expect(merged).To(HaveRank(32))
//	Expect(rec).To(RouteTo("fren"))
//	Expect(rec).To(HaveBLEUAtLeast(12))
//	Expect(rec).To(StayWithin(baseline, 0.1))
//	Expect(rec).To(HaveMedianLength(BeNumerically(">=", 10)))
//	Expect(rec).To(NotRepeat())
//
// Record matchers take a results.Record or *results.Record. Their failure
// messages show the numbers and the worst examples of the record.
package matchers

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/onsi/gomega/types"

	"loramix/engine/adapter"
	"loramix/engine/merge"
	"loramix/suites/results"
)

// DefaultRankTol is the relative tolerance for a numerical rank: singular
// values at or below DefaultRankTol * the largest one count as zero.
const DefaultRankTol = 1e-6

// Ranked is anything that knows the singular values of its update, per
// module (a merged adapter, for instance).
type Ranked interface {
	SingularValues() map[string][]float64
}

// NumericalRank counts the singular values above tol * the largest.
func NumericalRank(sv []float64, tol float64) int {
	max := 0.0
	for _, s := range sv {
		max = math.Max(max, s)
	}
	n := 0
	for _, s := range sv {
		if s > tol*max && s > 0 {
			n++
		}
	}
	return n
}

type rankMatcher struct {
	n       int
	atMost  bool
	bad     []string
	message string
}

// HaveRank succeeds when every module's update has numerical rank exactly n.
// Actual is an *adapter.Adapter, a *merge.Result, a Ranked, a
// map[string][]float64 of singular values per module, or a []float64 of one
// module's singular values.
func HaveRank(n int) types.GomegaMatcher { return &rankMatcher{n: n} }

// HaveRankAtMost succeeds when no module's update has rank above n.
func HaveRankAtMost(n int) types.GomegaMatcher { return &rankMatcher{n: n, atMost: true} }

func singularValues(actual any) (map[string][]float64, error) {
	switch a := actual.(type) {
	case Ranked:
		return a.SingularValues(), nil
	case *adapter.Adapter:
		return AdapterSpectra(a), nil
	case *merge.Result:
		return AdapterSpectra(a.Adapter), nil
	case map[string][]float64:
		return a, nil
	case []float64:
		return map[string][]float64{"update": a}, nil
	}
	return nil, fmt.Errorf("rank matchers take an *adapter.Adapter, *merge.Result, matchers.Ranked, map[string][]float64 or []float64, not %T", actual)
}

// AdapterSpectra returns the singular values of every module's update
// scaling * B @ A, computed from the factors without forming the update.
func AdapterSpectra(a *adapter.Adapter) map[string][]float64 {
	out := make(map[string][]float64, len(a.Modules))
	for name, m := range a.Modules {
		out[name] = merge.Spectrum(m).S
	}
	return out
}

func (m *rankMatcher) Match(actual any) (bool, error) {
	svs, err := singularValues(actual)
	if err != nil {
		return false, err
	}
	if len(svs) == 0 {
		return false, fmt.Errorf("rank matcher: no modules to check")
	}
	m.bad = m.bad[:0]
	names := sortedKeys(svs)
	for _, name := range names {
		r := NumericalRank(svs[name], DefaultRankTol)
		if (m.atMost && r > m.n) || (!m.atMost && r != m.n) {
			m.bad = append(m.bad, fmt.Sprintf("%s: rank %d (top singular values %s)", name, r, head(svs[name], 6)))
		}
	}
	return len(m.bad) == 0, nil
}

func (m *rankMatcher) want() string {
	if m.atMost {
		return fmt.Sprintf("rank at most %d", m.n)
	}
	return fmt.Sprintf("rank %d", m.n)
}

func (m *rankMatcher) FailureMessage(any) string {
	return fmt.Sprintf("Expected every module's update to have %s (tol %g); %d did not:\n  %s",
		m.want(), DefaultRankTol, len(m.bad), strings.Join(limit(m.bad, 8), "\n  "))
}

func (m *rankMatcher) NegatedFailureMessage(any) string {
	return fmt.Sprintf("Expected some module's update not to have %s, but all did", m.want())
}

func record(actual any) (*results.Record, error) {
	switch r := actual.(type) {
	case results.Record:
		return &r, nil
	case *results.Record:
		if r == nil {
			return nil, fmt.Errorf("record matcher: nil *results.Record")
		}
		return r, nil
	}
	return nil, fmt.Errorf("record matchers take a results.Record or *results.Record, not %T", actual)
}

// describe renders the record's metrics and worst examples for a message.
func describe(r *results.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on task %s (%d samples):\n", r.System.Key(), r.Task, r.Samples)
	for _, n := range sortedKeys(r.Metrics) {
		m := r.Metrics[n]
		fmt.Fprintf(&b, "  %-14s %9.3f  95%% CI [%.3f, %.3f]\n", n, m.Value, m.CILow, m.CIHigh)
	}
	if len(r.Routing) > 0 {
		fmt.Fprintf(&b, "  routing: ")
		for _, k := range sortedKeys(r.Routing) {
			fmt.Fprintf(&b, "%s %.0f%%  ", k, 100*r.Routing[k])
		}
		b.WriteString("\n")
	}
	if len(r.Worst) > 0 {
		b.WriteString("  worst examples:\n")
		for _, e := range limit2(r.Worst, 3) {
			fmt.Fprintf(&b, "    prompt: %q\n    output: %q\n", clip(e.Prompt, 120), clip(e.Output, 160))
			if e.Reference != "" {
				fmt.Fprintf(&b, "    reference: %q\n", clip(e.Reference, 120))
			}
			fmt.Fprintf(&b, "    score: %.3f\n", e.Score)
		}
	}
	return b.String()
}

// recordMatcher is a matcher over one record with a predicate and a
// description of what was expected.
type recordMatcher struct {
	want  string
	check func(r *results.Record) (bool, error)
	last  *results.Record
}

func (m *recordMatcher) Match(actual any) (bool, error) {
	r, err := record(actual)
	if err != nil {
		return false, err
	}
	m.last = r
	return m.check(r)
}

func (m *recordMatcher) FailureMessage(any) string {
	return fmt.Sprintf("Expected %s\n%s", m.want, describe(m.last))
}

func (m *recordMatcher) NegatedFailureMessage(any) string {
	return fmt.Sprintf("Expected NOT %s\n%s", m.want, describe(m.last))
}

func metric(r *results.Record, name string) (results.Metric, error) {
	m, ok := r.Metrics[name]
	if !ok {
		return m, fmt.Errorf("record %s/%s has no metric %q (has %s)", r.System.Key(), r.Task, name, strings.Join(sortedKeys(r.Metrics), ", "))
	}
	return m, nil
}

// RouteTo succeeds when the record's outputs behave as the named adapter:
// by the record's Routing shares (each output attributed, by chrF, to the
// closest single adapter's output on the same prompt, or to a tie), name has
// the largest share of all labels, ties included, and at least twice the
// share of every other adapter.
func RouteTo(name string) types.GomegaMatcher {
	return &recordMatcher{
		want: fmt.Sprintf("outputs to route to %q (the largest share, at least twice any other adapter's)", name),
		check: func(r *results.Record) (bool, error) {
			if len(r.Routing) == 0 {
				return false, fmt.Errorf("record %s/%s has no routing shares", r.System.Key(), r.Task)
			}
			own := r.Routing[name]
			for k, v := range r.Routing {
				if k == name {
					continue
				}
				if v > own || (k != TieLabel && 2*v > own) {
					return false, nil
				}
			}
			return own > 0, nil
		},
	}
}

// TieLabel is the routing label of outputs no closer to one adapter than
// to another (metrics.Tie).
const TieLabel = "tie"

// RouteToAtLeast succeeds when at least share (in [0, 1]) of the outputs
// are attributed to the named adapter.
func RouteToAtLeast(name string, share float64) types.GomegaMatcher {
	return &recordMatcher{
		want: fmt.Sprintf("at least %.0f%% of outputs to route to %q", 100*share, name),
		check: func(r *results.Record) (bool, error) {
			if len(r.Routing) == 0 {
				return false, fmt.Errorf("record %s/%s has no routing shares", r.System.Key(), r.Task)
			}
			return r.Routing[name] >= share, nil
		},
	}
}

// HaveBLEUAtLeast succeeds when the record's corpus BLEU is at least x.
func HaveBLEUAtLeast(x float64) types.GomegaMatcher {
	return &recordMatcher{
		want: fmt.Sprintf("BLEU of at least %.2f", x),
		check: func(r *results.Record) (bool, error) {
			m, err := metric(r, "bleu")
			return err == nil && m.Value >= x, err
		},
	}
}

// HaveMedianLength applies a matcher (or a number, for equality) to the
// median response length in words.
func HaveMedianLength(expected any) types.GomegaMatcher {
	inner, ok := expected.(types.GomegaMatcher)
	if !ok {
		inner = numEqual{expected}
	}
	m := &recordMatcher{}
	m.check = func(r *results.Record) (bool, error) {
		if len(r.Lengths) == 0 {
			return false, fmt.Errorf("record %s/%s has no response lengths", r.System.Key(), r.Task)
		}
		got := Median(r.Lengths)
		ok, err := inner.Match(got)
		if ok {
			m.want = fmt.Sprintf("median response length %g (words) not to match:\n%s", got, inner.NegatedFailureMessage(got))
		} else {
			m.want = fmt.Sprintf("median response length %g (words) to match:\n%s", got, inner.FailureMessage(got))
		}
		return ok, err
	}
	return m
}

// DefaultLoopRate is the largest share of looping outputs NotRepeat allows.
const DefaultLoopRate = 0.1

// NotRepeat succeeds when at most DefaultLoopRate of the outputs fall into a
// loop (the record's "loop_rate" metric).
func NotRepeat() types.GomegaMatcher { return NotRepeatMoreThan(DefaultLoopRate) }

// NotRepeatMoreThan is NotRepeat with an explicit largest loop rate.
func NotRepeatMoreThan(rate float64) types.GomegaMatcher {
	return &recordMatcher{
		want: fmt.Sprintf("at most %.0f%% of outputs to loop", 100*rate),
		check: func(r *results.Record) (bool, error) {
			m, err := metric(r, "loop_rate")
			return err == nil && m.Value <= rate, err
		},
	}
}

// StayWithin succeeds when no metric of the baseline record is worse in the
// actual record by more than tolerance * |baseline value| (in its worse
// direction, by higher_is_better).
func StayWithin(baseline results.Record, tolerance float64) types.GomegaMatcher {
	var regressions []string
	m := &recordMatcher{}
	m.check = func(r *results.Record) (bool, error) {
		regressions = regressions[:0]
		for _, n := range sortedKeys(baseline.Metrics) {
			b := baseline.Metrics[n]
			got, err := metric(r, n)
			if err != nil {
				return false, err
			}
			worse := got.Value - b.Value
			if b.HigherIsBetter {
				worse = -worse
			}
			if worse > tolerance*math.Abs(b.Value) {
				regressions = append(regressions, fmt.Sprintf("%s: %.3f -> %.3f (allowed %.3f)", n, b.Value, got.Value, tolerance*math.Abs(b.Value)))
			}
		}
		m.want = fmt.Sprintf("metrics within %.0f%% of the baseline; regressed: %s", 100*tolerance, strings.Join(regressions, "; "))
		return len(regressions) == 0, nil
	}
	return m
}

// Median returns the median of xs (the mean of the middle two for even n).
func Median(xs []int) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]int(nil), xs...)
	sort.Ints(s)
	if len(s)%2 == 1 {
		return float64(s[len(s)/2])
	}
	return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
}

type numEqual struct{ want any }

func (n numEqual) Match(actual any) (bool, error) {
	w, ok := toFloat(n.want)
	if !ok {
		return false, fmt.Errorf("HaveMedianLength: %v is neither a number nor a matcher", n.want)
	}
	a, _ := toFloat(actual)
	return a == w, nil
}
func (n numEqual) FailureMessage(actual any) string { return fmt.Sprintf("%v != %v", actual, n.want) }
func (n numEqual) NegatedFailureMessage(actual any) string {
	return fmt.Sprintf("%v == %v", actual, n.want)
}
func (n numEqual) String() string { return fmt.Sprintf("= %v", n.want) }

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return 0, false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func head(xs []float64, n int) string {
	if len(xs) > n {
		xs = xs[:n]
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.3g", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func limit(xs []string, n int) []string {
	if len(xs) > n {
		return append(xs[:n:n], fmt.Sprintf("... and %d more", len(xs)-n))
	}
	return xs
}

func limit2(xs []results.Example, n int) []results.Example {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
