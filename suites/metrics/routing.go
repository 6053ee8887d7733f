package metrics

import (
	"fmt"
	"slices"
	"strings"
)

// Tie is the Attribution label when no candidate is closer by the margin.
const Tie = "tie"

// Attribution tells which single-adapter output a combined output resembles.
type Attribution struct {
	Closest string             // the closest candidate's name, or Tie
	Scores  map[string]float64 // sentence chrF2 of the output against each candidate
}

// Attribute scores output against each candidate output (e.g. "fren" and
// "oasst": what each adapter alone generated for the same prompt) with
// sentence chrF2 and names the closest. When the best two are within margin
// chrF points of each other (or there is one candidate scoring 0, or none)
// the result is Tie.
func Attribute(output string, candidates map[string]string, margin float64) Attribution {
	a := Attribution{Closest: Tie, Scores: make(map[string]float64, len(candidates))}
	names := make([]string, 0, len(candidates))
	for name, text := range candidates {
		a.Scores[name] = SentenceCHRF(output, text).Score
		names = append(names, name)
	}
	slices.SortFunc(names, func(x, y string) int {
		if a.Scores[x] != a.Scores[y] {
			if a.Scores[x] > a.Scores[y] {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	switch {
	case len(names) == 0:
	case len(names) == 1:
		if a.Scores[names[0]] > margin {
			a.Closest = names[0]
		}
	case a.Scores[names[0]]-a.Scores[names[1]] > margin:
		a.Closest = names[0]
	}
	return a
}

// Behaviour labels for outputs that follow no, or several, formats.
const (
	NoFormat  = "none"
	Ambiguous = "ambiguous"
)

// NamedRules is one behaviour's format checker, e.g. "translation" with the
// fren task's rules.
type NamedRules struct {
	Name    string
	Checker *FormatChecker
}

// Classify returns the name of the one behaviour whose rules output follows,
// NoFormat if it follows none, or Ambiguous if it follows several.
func Classify(output string, fields map[string]string, behaviours []NamedRules) string {
	label := NoFormat
	for _, b := range behaviours {
		if len(b.Checker.Check(output, fields)) == 0 {
			if label != NoFormat {
				return Ambiguous
			}
			label = b.Name
		}
	}
	return label
}

// RoutingMatrix counts outputs by prompt format (rows, e.g. the task that
// built the prompt) and observed behaviour (columns, e.g. a Classify or
// Attribute label). The zero value is empty and ready to use; rows and
// columns keep the order they were first seen in.
type RoutingMatrix struct {
	rows, cols []string
	counts     map[[2]string]int
}

// NewRoutingMatrix returns a matrix with rows and columns laid out in the
// given order, so that empty ones still print.
func NewRoutingMatrix(rows, cols []string) *RoutingMatrix {
	m := &RoutingMatrix{}
	for _, r := range rows {
		m.addKey(&m.rows, r)
	}
	for _, c := range cols {
		m.addKey(&m.cols, c)
	}
	return m
}

func (m *RoutingMatrix) addKey(keys *[]string, k string) {
	if !slices.Contains(*keys, k) {
		*keys = append(*keys, k)
	}
}

// Add counts one output of prompt format row that showed behaviour col.
func (m *RoutingMatrix) Add(row, col string) {
	if m.counts == nil {
		m.counts = map[[2]string]int{}
	}
	m.addKey(&m.rows, row)
	m.addKey(&m.cols, col)
	m.counts[[2]string{row, col}]++
}

// Rows returns the prompt formats in order.
func (m *RoutingMatrix) Rows() []string { return slices.Clone(m.rows) }

// Cols returns the behaviours in order.
func (m *RoutingMatrix) Cols() []string { return slices.Clone(m.cols) }

// Count returns how many outputs of format row showed behaviour col.
func (m *RoutingMatrix) Count(row, col string) int { return m.counts[[2]string{row, col}] }

// RowTotal returns how many outputs of format row were counted.
func (m *RoutingMatrix) RowTotal(row string) int {
	n := 0
	for _, c := range m.cols {
		n += m.Count(row, c)
	}
	return n
}

// Share returns the fraction of format row's outputs that showed behaviour
// col, 0 for an empty row.
func (m *RoutingMatrix) Share(row, col string) float64 {
	t := m.RowTotal(row)
	if t == 0 {
		return 0
	}
	return float64(m.Count(row, col)) / float64(t)
}

// RowShares returns behaviour -> share for one row (results.Record.Routing).
func (m *RoutingMatrix) RowShares(row string) map[string]float64 {
	out := make(map[string]float64, len(m.cols))
	for _, c := range m.cols {
		out[c] = m.Share(row, c)
	}
	return out
}

// Render draws the matrix as an aligned text table, one row per prompt
// format, each cell "count (share%)", with row totals:
//
//	format  translation  answer      none       total
//	fren    45 (90.0%)   2 (4.0%)    3 (6.0%)   50
func (m *RoutingMatrix) Render() string {
	table := [][]string{append(append([]string{"format"}, m.cols...), "total")}
	for _, r := range m.rows {
		line := []string{r}
		for _, c := range m.cols {
			line = append(line, fmt.Sprintf("%d (%.1f%%)", m.Count(r, c), 100*m.Share(r, c)))
		}
		table = append(table, append(line, fmt.Sprint(m.RowTotal(r))))
	}
	widths := make([]int, len(table[0]))
	for _, line := range table {
		for j, cell := range line {
			widths[j] = max(widths[j], len([]rune(cell)))
		}
	}
	var b strings.Builder
	for _, line := range table {
		for j, cell := range line {
			if j > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[j]-len([]rune(cell)))
			if j == 0 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(pad + cell)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
