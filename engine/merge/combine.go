package merge

import (
	"math"
	"math/rand/v2"
)

// This file holds PEFT's merge_utils rules. Each combines task tensors t_i
// (flattened, all the same length) with weights w_i into one tensor:
//
//	task arithmetic:  sum_i w_i t_i
//	magnitude prune:  sum_i w_i top_k(t_i)          (k = floor(density * len))
//	dare linear:      sum_i w_i bernoulli(t_i) / density
//	ties:             disjoint_merge(w_i top_k(t_i))
//	dare ties:        disjoint_merge(w_i bernoulli(t_i) / density)
//
// disjoint_merge keeps, element by element, the tensors whose sign agrees
// with the majority sign of the pruned, unweighted tensors ("total": the sign
// of their sum; "frequency": the sign of the count of signs; ties go to +),
// and averages the kept weighted values over their number.

// rule names a merge_utils function.
type rule int

const (
	ruleTaskArithmetic rule = iota
	ruleMagnitudePrune
	ruleDareLinear
	ruleTies
	ruleDareTies
)

// combineParams carries the arguments of the rules that prune.
type combineParams struct {
	density   float64
	frequency bool       // majority sign by frequency instead of total
	rng       *rand.Rand // DARE's masks; nil for the deterministic rules
}

// combine applies rule r to ts with weights ws and returns a new tensor.
func combine(r rule, ts [][]float64, ws []float64, p combineParams) []float64 {
	n := len(ts[0])
	switch r {
	case ruleTaskArithmetic:
		return weightedSum(ts, ws, n)
	case ruleMagnitudePrune:
		return weightedSum(mapPrune(ts, func(t []float64) []float64 { return magnitudePrune(t, p.density) }), ws, n)
	case ruleDareLinear:
		return weightedSum(mapPrune(ts, func(t []float64) []float64 { return randomPrune(t, p.density, p.rng) }), ws, n)
	case ruleTies:
		return disjointMerge(mapPrune(ts, func(t []float64) []float64 { return magnitudePrune(t, p.density) }), ws, p.frequency)
	case ruleDareTies:
		return disjointMerge(mapPrune(ts, func(t []float64) []float64 { return randomPrune(t, p.density, p.rng) }), ws, p.frequency)
	}
	panic("merge: unknown rule")
}

func mapPrune(ts [][]float64, f func([]float64) []float64) [][]float64 {
	out := make([][]float64, len(ts))
	for i, t := range ts {
		out[i] = f(t)
	}
	return out
}

func weightedSum(ts [][]float64, ws []float64, n int) []float64 {
	out := make([]float64, n)
	for i, t := range ts {
		w := ws[i]
		for j, v := range t {
			out[j] += w * v
		}
	}
	return out
}

// magnitudePrune keeps the k = floor(density * len(t)) entries of largest
// magnitude and zeroes the rest; density >= 1 keeps everything. Among equal
// magnitudes at the threshold, the earliest entries are kept.
func magnitudePrune(t []float64, density float64) []float64 {
	if density >= 1 {
		return t
	}
	k := int(density * float64(len(t)))
	out := make([]float64, len(t))
	if k <= 0 {
		return out
	}
	abs := make([]float64, len(t))
	for i, v := range t {
		abs[i] = math.Abs(v)
	}
	thr := kthLargest(abs, k)
	above := 0
	for _, v := range t {
		if math.Abs(v) > thr {
			above++
		}
	}
	ties := k - above // entries equal to the threshold that are kept
	for i, v := range t {
		a := math.Abs(v)
		if a > thr || (a == thr && ties > 0) {
			out[i] = v
			if a == thr {
				ties--
			}
		}
	}
	return out
}

// kthLargest returns the k-th largest value of x (1-based), reordering x.
// It is a quickselect with a median-of-three pivot: O(len(x)) on average.
func kthLargest(x []float64, k int) float64 {
	lo, hi := 0, len(x)-1
	want := k - 1 // index in descending order
	for lo < hi {
		mid := lo + (hi-lo)/2
		// median of three into x[hi] as the pivot
		if x[lo] < x[mid] {
			x[lo], x[mid] = x[mid], x[lo]
		}
		if x[lo] < x[hi] {
			x[lo], x[hi] = x[hi], x[lo]
		}
		if x[hi] < x[mid] {
			x[hi], x[mid] = x[mid], x[hi]
		}
		pivot := x[hi]
		// three-way partition, descending: [> pivot | == pivot | < pivot]
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch {
			case x[i] > pivot:
				x[lt], x[i] = x[i], x[lt]
				lt++
				i++
			case x[i] < pivot:
				x[i], x[gt] = x[gt], x[i]
				gt--
			default:
				i++
			}
		}
		switch {
		case want < lt:
			hi = lt - 1
		case want > gt:
			lo = gt + 1
		default:
			return pivot
		}
	}
	return x[want]
}

// randomPrune keeps each entry with probability density and rescales the
// kept ones by 1/density (DARE). density >= 1 keeps everything unscaled.
// PEFT draws the mask with torch.bernoulli; loramix draws it from rng, so a
// seed reproduces loramix's result but not torch's.
func randomPrune(t []float64, density float64, rng *rand.Rand) []float64 {
	if density >= 1 {
		return t
	}
	out := make([]float64, len(t))
	for i, v := range t {
		if rng.Float64() < density {
			out[i] = v / density
		}
	}
	return out
}

// disjointMerge is TIES' sign election and disjoint mean over pruned tensors
// ts with weights ws.
func disjointMerge(ts [][]float64, ws []float64, frequency bool) []float64 {
	n := len(ts[0])
	out := make([]float64, n)
	for j := 0; j < n; j++ {
		var mag float64
		for _, t := range ts {
			if frequency {
				mag += sign(t[j])
			} else {
				mag += t[j]
			}
		}
		major := 1.0
		if mag < 0 {
			major = -1
		}
		var sum, count float64
		for i, t := range ts {
			if sign(t[j]) == major {
				sum += ws[i] * t[j]
				count++
			}
		}
		out[j] = sum / math.Max(count, 1)
	}
	return out
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
