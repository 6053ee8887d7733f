package eval

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"loramix/suites/results"
)

// ParseCombine reads a combination as written on the command line,
// "METHOD:W1,W2,..." (for example "svd:0.5,1" or "cat:1,1"), over the given
// adapter names in order, or "METHOD:W1,W2@A,B" over the named adapters A
// and B. A "-exact" suffix on the method asks for the exact weighted sum.
// "base" means no adapter; a bare adapter name means that adapter alone.
func ParseCombine(s string, adapters []string) (results.System, error) {
	s = strings.TrimSpace(s)
	if s == "base" {
		return results.System{}, nil
	}
	for _, a := range adapters {
		if s == a {
			return results.System{Adapters: []string{a}}, nil
		}
	}
	method, ws, ok := strings.Cut(s, ":")
	if !ok {
		return results.System{}, fmt.Errorf("combine %q: want METHOD:W1,W2 (e.g. svd:0.5,1), base, or an adapter name (%s)", s, strings.Join(adapters, ", "))
	}
	if ws2, over, ok := strings.Cut(ws, "@"); ok {
		ws = ws2
		var picked []string
		for _, n := range strings.Split(over, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(adapters, n) {
				return results.System{}, fmt.Errorf("combine %q: no adapter %q (have %s)", s, n, strings.Join(adapters, ", "))
			}
			picked = append(picked, n)
		}
		adapters = picked
	}
	sys := results.System{Adapters: adapters, Method: method}
	if m, isExact := strings.CutSuffix(method, "-exact"); isExact {
		sys.Method, sys.Exact = m, true
	}
	for _, w := range strings.Split(ws, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil {
			return results.System{}, fmt.Errorf("combine %q: weight %q is not a number", s, w)
		}
		sys.Weights = append(sys.Weights, v)
	}
	if len(sys.Weights) != len(adapters) {
		return results.System{}, fmt.Errorf("combine %q: %d weights for %d adapters (%s)", s, len(sys.Weights), len(adapters), strings.Join(adapters, ", "))
	}
	return sys, nil
}
