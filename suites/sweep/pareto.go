package sweep

import "sort"

// Point is one system placed on two metrics.
type Point struct {
	Label string
	X, Y  float64
}

// ParetoFront returns the points that no other point dominates, sorted by X
// ascending (ties by Y). A point dominates another when it is at least as
// good on both metrics and better on one; xHigher and yHigher say whether
// higher is better on each. Exact duplicates are all kept.
func ParetoFront(points []Point, xHigher, yHigher bool) []Point {
	better := func(a, b float64, higher bool) bool {
		if higher {
			return a > b
		}
		return a < b
	}
	dominates := func(p, q Point) bool {
		geX := p.X == q.X || better(p.X, q.X, xHigher)
		geY := p.Y == q.Y || better(p.Y, q.Y, yHigher)
		return geX && geY && (better(p.X, q.X, xHigher) || better(p.Y, q.Y, yHigher))
	}
	var front []Point
	for i, q := range points {
		dominated := false
		for j, p := range points {
			if i != j && dominates(p, q) {
				dominated = true
				break
			}
		}
		if !dominated {
			front = append(front, q)
		}
	}
	sort.SliceStable(front, func(i, j int) bool {
		if front[i].X != front[j].X {
			return front[i].X < front[j].X
		}
		return front[i].Y < front[j].Y
	})
	return front
}
