package sweep

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/optimize"

	"loramix/suites/results"
)

// SearchSpec describes a search over the weights of one combination.
type SearchSpec struct {
	Adapters  []string // combined in this order
	Method    string   // combination type, e.g. "svd"; a "-exact" suffix sets System.Exact
	Objective Objective
	// Lower and Upper bound each adapter's weight (len(Adapters) each).
	Lower, Upper []float64
	// Budget is the most distinct systems evaluated (cache hits are free).
	Budget int
	// Start is the first point tried; nil means the centre of the box.
	Start []float64
	// Optimizer is "neldermead" (the default) or "cmaes".
	Optimizer string
	// Resolution rounds weights to multiples of it before evaluating, so
	// that nearby points share a cached evaluation; 0 means 0.001.
	Resolution float64
	// Seed drives CMA-ES's sampling.
	Seed uint64
}

// Trial is one evaluated system.
type Trial struct {
	System   results.System
	Records  []results.Record
	Score    float64 // Objective.Score: higher is better
	Feasible bool
}

// SearchResult is what Search found.
type SearchResult struct {
	Best   Trial   // the highest-scoring trial, preferring feasible ones
	Trials []Trial // every distinct evaluation, in order
	// Front is the Pareto front of the trials over the target metric (X) and
	// the first constraint's metric (Y); nil without a constraint.
	Front []Point
	// Stopped says why the optimizer stopped (budget, convergence, ...).
	Stopped string
}

var errBudget = errors.New("evaluation budget spent")

// Search looks for the weights that maximize spec.Objective with a
// gradient-free optimizer from gonum (Nelder–Mead or CMA-ES), in the way
// LoraHub does with Nevergrad. Weights outside the box are evaluated at the
// nearest point in the box plus a penalty growing with the distance, so the
// optimizer is pushed back inside. Each distinct (rounded) system is
// evaluated once. It returns ctx.Err() when cancelled and the first
// evaluation error; it errors on a bad spec.
func Search(ctx context.Context, spec SearchSpec, evaluate Evaluate) (*SearchResult, error) {
	n := len(spec.Adapters)
	if n == 0 || len(spec.Lower) != n || len(spec.Upper) != n {
		return nil, fmt.Errorf("search: %d adapters need as many lower and upper bounds (have %d, %d)", n, len(spec.Lower), len(spec.Upper))
	}
	for i := range spec.Lower {
		if !(spec.Lower[i] <= spec.Upper[i]) {
			return nil, fmt.Errorf("search: bounds of %s: lower %g above upper %g", spec.Adapters[i], spec.Lower[i], spec.Upper[i])
		}
	}
	if spec.Budget < 1 {
		return nil, fmt.Errorf("search: budget %d: want at least 1", spec.Budget)
	}
	res := spec.Resolution
	if res <= 0 {
		res = 0.001
	}
	start := spec.Start
	if start == nil {
		start = make([]float64, n)
		for i := range start {
			start[i] = (spec.Lower[i] + spec.Upper[i]) / 2
		}
	}
	if len(start) != n {
		return nil, fmt.Errorf("search: start has %d weights for %d adapters", len(start), n)
	}

	out := &SearchResult{}
	cache := map[string]int{} // system key -> index in out.Trials
	var failure error         // an evaluation error or ctx.Err(), stops the optimizer

	// system rounds x into the box and onto the resolution grid.
	system := func(x []float64) (results.System, float64) {
		w := make([]float64, n)
		dist := 0.0
		for i, v := range x {
			c := math.Min(math.Max(v, spec.Lower[i]), spec.Upper[i])
			dist += (v - c) * (v - c)
			w[i] = roundTo(math.Round(c/res)*res, gridDecimals)
		}
		return results.System{
			Adapters: spec.Adapters,
			Method:   trimExact(spec.Method),
			Weights:  w,
			Exact:    spec.Method != trimExact(spec.Method),
		}, math.Sqrt(dist)
	}
	// f is what gonum minimizes: minus the score, plus the box penalty.
	f := func(x []float64) float64 {
		s, dist := system(x)
		box := 1e3 * dist
		if i, ok := cache[s.Key()]; ok {
			return -out.Trials[i].Score + box
		}
		if failure != nil || len(out.Trials) >= spec.Budget {
			return math.Inf(1) // the Recorder stops the run
		}
		if err := ctx.Err(); err != nil {
			failure = err
			return math.Inf(1)
		}
		recs, err := evaluate(ctx, s)
		if err == nil {
			var t Trial
			t.Score, t.Feasible, err = spec.Objective.Score(recs)
			t.System, t.Records = s, recs
			if err == nil {
				cache[s.Key()] = len(out.Trials)
				out.Trials = append(out.Trials, t)
				return -t.Score + box
			}
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		failure = fmt.Errorf("search: %s: %w", s.Key(), err)
		return math.Inf(1)
	}

	settings := &optimize.Settings{
		Converger:       &optimize.FunctionConverge{Absolute: 1e-9, Iterations: 50},
		FuncEvaluations: 50*spec.Budget + 1000, // cache hits included; stops a stalled run
		Recorder: stopper(func() error {
			if failure != nil {
				return failure
			}
			if len(out.Trials) >= spec.Budget {
				return errBudget
			}
			return nil
		}),
	}
	var method optimize.Method
	switch spec.Optimizer {
	case "", "neldermead", "nelder-mead":
		method = &optimize.NelderMead{SimplexSize: simplexSize(spec.Lower, spec.Upper)}
	case "cmaes", "cma-es":
		method = &optimize.CmaEsChol{
			InitStepSize: simplexSize(spec.Lower, spec.Upper),
			Src:          rand.NewPCG(spec.Seed, 0x6c6f72616d6978),
		}
	default:
		return nil, fmt.Errorf("search: optimizer %q: want neldermead or cmaes", spec.Optimizer)
	}
	result, err := optimize.Minimize(optimize.Problem{Func: f}, start, settings, method)
	switch {
	case failure != nil:
		return nil, failure
	case errors.Is(err, errBudget):
		out.Stopped = errBudget.Error()
	case err != nil:
		return nil, fmt.Errorf("search: %w", err)
	default:
		out.Stopped = result.Status.String()
	}
	if len(out.Trials) == 0 {
		return nil, errors.New("search: nothing was evaluated")
	}

	out.Best = out.Trials[0]
	for _, t := range out.Trials[1:] {
		if (t.Feasible && !out.Best.Feasible) || (t.Feasible == out.Best.Feasible && t.Score > out.Best.Score) {
			out.Best = t
		}
	}
	out.Front = searchFront(spec.Objective, out.Trials)
	return out, nil
}

func trimExact(m string) string {
	if len(m) > 6 && m[len(m)-6:] == "-exact" {
		return m[:len(m)-6]
	}
	return m
}

// simplexSize is a quarter of the smallest box side (0.25 when the box is
// degenerate).
func simplexSize(lo, hi []float64) float64 {
	s := math.Inf(1)
	for i := range lo {
		if d := hi[i] - lo[i]; d > 0 {
			s = math.Min(s, d/4)
		}
	}
	if math.IsInf(s, 1) {
		return 0.25
	}
	return s
}

// searchFront places the trials on the target and the first constraint.
func searchFront(o Objective, trials []Trial) []Point {
	if len(o.Constraints) == 0 {
		return nil
	}
	y := o.Constraints[0].Ref
	var pts []Point
	for _, t := range trials {
		xv, err1 := o.Target.Value(t.Records)
		yv, err2 := y.Value(t.Records)
		if err1 == nil && err2 == nil {
			pts = append(pts, Point{t.System.Key(), xv, yv})
		}
	}
	return ParetoFront(pts, o.Maximize, o.Constraints[0].AtLeast)
}

// stopper is an optimize.Recorder that ends the run when check errs.
type stopper func() error

func (s stopper) Init() error { return nil }
func (s stopper) Record(_ *optimize.Location, _ optimize.Operation, _ *optimize.Stats) error {
	return s()
}
