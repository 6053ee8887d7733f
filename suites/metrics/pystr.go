package metrics

import "strings"

// Python's str methods treat a different set of code points as whitespace
// than Go's unicode.IsSpace (they add the ASCII separators U+001C..U+001F).
// sacreBLEU splits and strips with Python's rules, so these helpers do too.

// pyIsSpace reports whether r is whitespace for Python's str.isspace.
func pyIsSpace(r rune) bool {
	switch {
	case r >= '\t' && r <= '\r', r >= 0x1c && r <= 0x20:
		return true
	case r < 0x85:
		return false
	case r == 0x85, r == 0xa0, r == 0x1680, r >= 0x2000 && r <= 0x200a,
		r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

// pyFields splits s like Python's s.split() with no argument.
func pyFields(s string) []string { return strings.FieldsFunc(s, pyIsSpace) }

// pyRStrip strips trailing whitespace like Python's s.rstrip().
func pyRStrip(s string) string { return strings.TrimRightFunc(s, pyIsSpace) }
