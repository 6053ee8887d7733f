package sweep

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"loramix/suites/results"
)

// MetricRef names one metric of one task, written "bleu(fren)".
type MetricRef struct {
	Metric, Task string
}

func (m MetricRef) String() string { return m.Metric + "(" + m.Task + ")" }

// Value returns the metric's value in recs. When the record has no metric
// of that name, "length_words" (the median response length in words, as
// suites/tasks names it; "median_words" is an alias) and "mean_words" are
// derived from Record.Lengths.
func (m MetricRef) Value(recs []results.Record) (float64, error) {
	for _, r := range recs {
		if r.Task != m.Task {
			continue
		}
		if v, ok := r.Metrics[m.Metric]; ok {
			return v.Value, nil
		}
		if v, ok := r.Metrics["length_words"]; ok && m.Metric == "median_words" {
			return v.Value, nil
		}
		if v, ok := derived(m.Metric, r.Lengths); ok {
			return v, nil
		}
		have := make([]string, 0, len(r.Metrics))
		for k := range r.Metrics {
			have = append(have, k)
		}
		sort.Strings(have)
		return 0, fmt.Errorf("%s: task %s has no metric %q (have %s)", m, m.Task, m.Metric, strings.Join(have, ", "))
	}
	return 0, fmt.Errorf("%s: no record for task %q", m, m.Task)
}

// HigherIsBetter reports the metric's direction as recorded, and true for
// the derived length metrics (a floor on chat length is the usual use).
func (m MetricRef) HigherIsBetter(recs []results.Record) bool {
	for _, r := range recs {
		if v, ok := r.Metrics[m.Metric]; ok && r.Task == m.Task {
			return v.HigherIsBetter
		}
	}
	return true
}

func derived(name string, lengths []int) (float64, bool) {
	if len(lengths) == 0 {
		return 0, false
	}
	switch name {
	case "length_words", "median_words":
		return Median(lengths), true
	case "mean_words":
		s := 0
		for _, l := range lengths {
			s += l
		}
		return float64(s) / float64(len(lengths)), true
	}
	return 0, false
}

// Median returns the median of xs (the mean of the middle two for an even
// count); NaN for none.
func Median(xs []int) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]int(nil), xs...)
	sort.Ints(s)
	n := len(s)
	if n%2 == 1 {
		return float64(s[n/2])
	}
	return float64(s[n/2-1]+s[n/2]) / 2
}

// Constraint is a bound on a metric: Ref >= Bound (AtLeast) or Ref <= Bound.
type Constraint struct {
	Ref     MetricRef
	AtLeast bool
	Bound   float64
}

func (c Constraint) String() string {
	op := "<="
	if c.AtLeast {
		op = ">="
	}
	return fmt.Sprintf("%s %s %g", c.Ref, op, c.Bound)
}

// violation is how far v is on the wrong side of the bound (0 if satisfied).
func (c Constraint) violation(v float64) float64 {
	if c.AtLeast {
		return math.Max(0, c.Bound-v)
	}
	return math.Max(0, v-c.Bound)
}

// Objective is what Search optimizes: one metric to maximize or minimize,
// subject to constraints enforced as a penalty.
type Objective struct {
	Target      MetricRef
	Maximize    bool
	Constraints []Constraint
	// Penalty is subtracted from the score per unit of constraint violation
	// (in the constrained metric's own units). Zero means DefaultPenalty.
	Penalty float64
}

// DefaultPenalty is the penalty per unit of violation when none is set.
const DefaultPenalty = 10

var (
	objectiveRE  = regexp.MustCompile(`^(maximize|minimize|max|min)\s+(\w+)\(([\w.-]+)\)\s*(?:(?:subject\s+to|s\.t\.)\s+(.+))?$`)
	constraintRE = regexp.MustCompile(`^(\w+)\(([\w.-]+)\)\s*(>=|<=)\s*(\S+)$`)
	andRE        = regexp.MustCompile(`\s+and\s+|\s*,\s*`)
)

// ParseObjective parses an objective such as
//
//	maximize bleu(fren) subject to length_words(oasst) >= 40 and repetition(oasst) <= 0.1
//
// Constraints are joined by "and" or commas; "max"/"min" and "s.t." are
// accepted too.
func ParseObjective(s string) (Objective, error) {
	m := objectiveRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Objective{}, fmt.Errorf("objective %q: want \"maximize METRIC(TASK) [subject to METRIC(TASK) >= X [and ...]]\"", s)
	}
	o := Objective{Target: MetricRef{m[2], m[3]}, Maximize: strings.HasPrefix(m[1], "max")}
	if m[4] == "" {
		return o, nil
	}
	for _, part := range andRE.Split(strings.TrimSpace(m[4]), -1) {
		c := constraintRE.FindStringSubmatch(strings.TrimSpace(part))
		if c == nil {
			return Objective{}, fmt.Errorf("objective %q: constraint %q: want METRIC(TASK) >= X or <= X", s, part)
		}
		b, err := strconv.ParseFloat(c[4], 64)
		if err != nil || math.IsNaN(b) || math.IsInf(b, 0) {
			return Objective{}, fmt.Errorf("objective %q: constraint %q: bound %q is not a number", s, part, c[4])
		}
		o.Constraints = append(o.Constraints, Constraint{MetricRef{c[1], c[2]}, c[3] == ">=", b})
	}
	return o, nil
}

func (o Objective) String() string {
	s := "minimize "
	if o.Maximize {
		s = "maximize "
	}
	s += o.Target.String()
	for i, c := range o.Constraints {
		if i == 0 {
			s += " subject to "
		} else {
			s += " and "
		}
		s += c.String()
	}
	return s
}

// Score rates recs: higher is better. It is the target's value (negated when
// minimizing) less Penalty times the summed constraint violations. feasible
// is true when every constraint holds.
func (o Objective) Score(recs []results.Record) (score float64, feasible bool, err error) {
	v, err := o.Target.Value(recs)
	if err != nil {
		return 0, false, err
	}
	if !o.Maximize {
		v = -v
	}
	pen := o.Penalty
	if pen == 0 {
		pen = DefaultPenalty
	}
	feasible = true
	for _, c := range o.Constraints {
		cv, err := c.Ref.Value(recs)
		if err != nil {
			return 0, false, err
		}
		if viol := c.violation(cv); viol > 0 {
			feasible = false
			v -= pen * viol
		}
	}
	return v, feasible, nil
}
