package datasets

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Description is one entry of a Debian Translation-LL list.
type Description struct {
	Package    string
	MD5        string   // Description-md5: the md5 of the English original
	Summary    string   // the first line of the description
	Paragraphs []string // the long description, one string per paragraph, whitespace collapsed
}

// ParseTranslation reads a Translation-LL file (deb822 paragraphs with fields
// Package, Description-md5 and Description-LL) for language lang ("en", "fr").
// Entries without an md5 or a summary are an error naming the file and line.
func ParseTranslation(name, lang string, r io.Reader) ([]Description, error) {
	field := "Description-" + lang + ":"
	var out []Description
	var cur Description
	var para []string
	inDesc := false
	startLine := 0
	flushPara := func() {
		if len(para) > 0 {
			cur.Paragraphs = append(cur.Paragraphs, strings.Join(para, " "))
			para = para[:0]
		}
	}
	flush := func() error {
		flushPara()
		if cur.Package == "" && cur.MD5 == "" && cur.Summary == "" {
			return nil
		}
		if cur.MD5 == "" || cur.Summary == "" {
			return fmt.Errorf("%s:%d: entry for package %q lacks Description-md5 or %s", name, startLine, cur.Package, field)
		}
		out = append(out, cur)
		cur = Description{}
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		switch {
		case s == "":
			if err := flush(); err != nil {
				return nil, err
			}
			inDesc = false
		case s[0] == ' ' || s[0] == '\t':
			if !inDesc {
				continue // continuation of a field we do not keep
			}
			body := strings.TrimSpace(s)
			if body == "." {
				flushPara()
				continue
			}
			if body != "" {
				para = append(para, collapseSpace(body))
			}
		default:
			if cur.Package == "" && cur.MD5 == "" && cur.Summary == "" {
				startLine = line
			}
			inDesc = false
			key, val, ok := strings.Cut(s, ":")
			if !ok {
				return nil, fmt.Errorf("%s:%d: malformed line %q", name, line, truncate(s, 60))
			}
			val = strings.TrimSpace(val)
			switch key + ":" {
			case "Package:":
				cur.Package = val
			case "Description-md5:":
				cur.MD5 = val
			case field:
				cur.Summary = collapseSpace(val)
				inDesc = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// PairDescriptions pairs French and English descriptions that share a
// Description-md5 and returns one summary pair per md5, in the order of fr.
// French entries whose md5 has no English entry are skipped.
func PairDescriptions(en, fr []Description) []Pair {
	byMD5 := make(map[string]Description, len(en))
	for _, d := range en {
		if _, dup := byMD5[d.MD5]; !dup {
			byMD5[d.MD5] = d
		}
	}
	seen := map[string]bool{}
	var out []Pair
	for _, f := range fr {
		e, ok := byMD5[f.MD5]
		if !ok || seen[f.MD5] {
			continue
		}
		seen[f.MD5] = true
		out = append(out, Pair{Source: f.Summary, Target: e.Summary})
	}
	return out
}

func collapseSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
