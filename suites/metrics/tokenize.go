package metrics

import "strings"

// Tokenize13a tokenizes one segment the way sacreBLEU's default "13a"
// tokenizer does (the mteval-v13a.pl rules used by WMT), returning the tokens
// joined by single spaces:
//
//   - "<skipped>" and "-\n" are removed, other newlines become spaces, and
//     the entities &quot; &amp; &lt; &gt; are unescaped (in that order);
//   - the ASCII symbols !"#$%&()*+/:;<=>?@[\]^_`{|}~ and space are split off;
//   - '.' and ',' are split off unless they sit between digits;
//   - '-' is split off after a digit;
//   - runs of (Python) whitespace collapse to one space, ends are trimmed.
//
// The rules work on code points; digits are ASCII 0-9 only.
func Tokenize13a(line string) string {
	line = strings.ReplaceAll(line, "<skipped>", "")
	line = strings.ReplaceAll(line, "-\n", "")
	line = strings.ReplaceAll(line, "\n", " ")
	if strings.Contains(line, "&") {
		line = strings.ReplaceAll(line, "&quot;", `"`)
		line = strings.ReplaceAll(line, "&amp;", "&")
		line = strings.ReplaceAll(line, "&lt;", "<")
		line = strings.ReplaceAll(line, "&gt;", ">")
	}
	rs := []rune(" " + line + " ")

	// Split off the symbol set.
	out := make([]rune, 0, 2*len(rs))
	for _, r := range rs {
		if isSym13a(r) {
			out = append(out, ' ', r, ' ')
		} else {
			out = append(out, r)
		}
	}
	// Each pass below rewrites non-overlapping two-rune matches, scanning left
	// to right like re.sub.
	out = rewritePairs(out, func(a, b rune) bool { return !isDigit(a) && (b == '.' || b == ',') },
		func(dst []rune, a, b rune) []rune { return append(dst, a, ' ', b, ' ') })
	out = rewritePairs(out, func(a, b rune) bool { return (a == '.' || a == ',') && !isDigit(b) },
		func(dst []rune, a, b rune) []rune { return append(dst, ' ', a, ' ', b) })
	out = rewritePairs(out, func(a, b rune) bool { return isDigit(a) && b == '-' },
		func(dst []rune, a, b rune) []rune { return append(dst, a, ' ', b, ' ') })
	return strings.Join(pyFields(string(out)), " ")
}

// isSym13a reports membership in 13a's first character class: the ASCII
// ranges space..&, (..+, :..@, [..`, {..~ and '/'.
func isSym13a(r rune) bool {
	return (r >= ' ' && r <= '&') || (r >= '(' && r <= '+') || (r >= ':' && r <= '@') ||
		(r >= '[' && r <= '`') || (r >= '{' && r <= '~') || r == '/'
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// rewritePairs scans rs left to right; where match(rs[i], rs[i+1]) holds it
// appends emit(a, b) and skips both runes, otherwise it copies rs[i].
func rewritePairs(rs []rune, match func(a, b rune) bool, emit func(dst []rune, a, b rune) []rune) []rune {
	out := make([]rune, 0, len(rs)+len(rs)/4)
	for i := 0; i < len(rs); {
		if i+1 < len(rs) && match(rs[i], rs[i+1]) {
			out = emit(out, rs[i], rs[i+1])
			i += 2
			continue
		}
		out = append(out, rs[i])
		i++
	}
	return out
}
