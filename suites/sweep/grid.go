// Package sweep evaluates many combinations of adapters: a grid of weights
// (Points, Run), a gradient-free search over weights (Search), and the
// Pareto front of two metrics (ParetoFront).
//
// The package knows nothing about models. Whoever runs it passes an Evaluate
// function that turns one results.System into its Records (one per task);
// tests pass a synthetic one.
package sweep

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"loramix/suites/results"
)

// Methods are the combination types a sweep accepts: PEFT 0.21's
// add_weighted_adapter types. A "-exact" suffix (e.g. "svd-exact") asks for
// loramix's exact mode (System.Exact).
var Methods = []string{
	"cat", "linear", "svd", "ties", "ties_svd", "dare_linear", "dare_ties",
	"dare_linear_svd", "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd",
}

// gridDecimals is the precision grid values are rounded to, so that
// 0:1:0.1 yields 0.3 and not 0.30000000000000004.
const gridDecimals = 1e9

// ParseGrid parses "start:stop:step" into the values start, start+step, ...
// up to and including stop (when stop lies on the grid within 1e-9 of a step).
// A single number "x" is the one-value grid [x]. Values are rounded to 9
// decimals. Step must be positive and stop >= start.
func ParseGrid(spec string) ([]float64, error) {
	parts := strings.Split(strings.TrimSpace(spec), ":")
	nums := make([]float64, len(parts))
	for i, p := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("weights grid %q: %q is not a number", spec, p)
		}
		nums[i] = x
	}
	switch len(nums) {
	case 1:
		return nums, nil
	case 3:
	default:
		return nil, fmt.Errorf("weights grid %q: want start:stop:step", spec)
	}
	start, stop, step := nums[0], nums[1], nums[2]
	if step <= 0 {
		return nil, fmt.Errorf("weights grid %q: step must be positive", spec)
	}
	if stop < start {
		return nil, fmt.Errorf("weights grid %q: stop is below start", spec)
	}
	n := int(math.Floor((stop-start)/step+1e-9)) + 1
	if n > 1_000_000 {
		return nil, fmt.Errorf("weights grid %q: %d values is too many", spec, n)
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = roundTo(start+float64(i)*step, gridDecimals)
	}
	return out, nil
}

func roundTo(x, scale float64) float64 {
	r := math.Round(x*scale) / scale
	if r == 0 {
		return 0 // no -0
	}
	return r
}

// ParseMethods parses a comma-separated list of combination types such as
// "svd,cat" or "svd-exact", checking each against Methods.
func ParseMethods(spec string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(spec, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !knownMethod(strings.TrimSuffix(m, "-exact")) {
			return nil, fmt.Errorf("method %q: unknown (have %s)", m, strings.Join(Methods, ", "))
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("methods %q: name at least one", spec)
	}
	return out, nil
}

func knownMethod(m string) bool {
	for _, k := range Methods {
		if k == m {
			return true
		}
	}
	return false
}

// Points returns every System of the sweep: for each method, the cartesian
// product of grid over the adapters (the first adapter's weight varies
// slowest). With A adapters, M methods and G grid values that is M*G^A
// points, in a fixed order.
func Points(adapters, methods []string, grid []float64) []results.System {
	var out []results.System
	if len(adapters) == 0 || len(grid) == 0 {
		return nil
	}
	for _, m := range methods {
		exact := strings.HasSuffix(m, "-exact")
		idx := make([]int, len(adapters)) // odometer over grid indices
		for {
			w := make([]float64, len(adapters))
			for i, j := range idx {
				w[i] = grid[j]
			}
			out = append(out, results.System{
				Adapters: append([]string(nil), adapters...),
				Method:   strings.TrimSuffix(m, "-exact"),
				Weights:  w,
				Exact:    exact,
			})
			k := len(idx) - 1
			for k >= 0 && idx[k] == len(grid)-1 {
				idx[k] = 0
				k--
			}
			if k < 0 {
				break
			}
			idx[k]++
		}
	}
	return out
}

// Shard is the part I (0-based) of N of a sweep. In a Ginkgo suite run with
// `ginkgo -p`, process k of n takes Shard{I: GinkgoParallelProcess() - 1,
// N: n} (n from GinkgoConfiguration()); with several GPUs, one process per
// GPU does the same, each writing its own file.
type Shard struct{ I, N int }

// ParseShard parses "i/n" with 0 <= i < n. The empty string is the whole
// sweep, 0/1.
func ParseShard(spec string) (Shard, error) {
	if strings.TrimSpace(spec) == "" {
		return Shard{0, 1}, nil
	}
	a, b, ok := strings.Cut(spec, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: want i/n with 0 <= i < n", spec)
	}
	return Shard{i, n}, nil
}

// String formats the shard as "i/n".
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.I, s.N) }

// Take returns every N-th point starting at index I. The shards 0/n .. n-1/n
// partition points: each point is in exactly one of them.
func (s Shard) Take(points []results.System) []results.System {
	if s.N <= 1 {
		return points
	}
	var out []results.System
	for k := s.I; k < len(points); k += s.N {
		out = append(out, points[k])
	}
	return out
}
