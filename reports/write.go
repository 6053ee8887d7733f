package reports

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"strings"

	"loramix/engine/safetensors"
)

var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{
	// img embeds a PNG. Base64 needs no escaping in an attribute; going
	// through template.URL would write each '+' as "&#43;".
	"img": func(png []byte, alt string) template.HTML {
		return template.HTML(`<img src="` + dataURI(png) + `" alt="` + html.EscapeString(alt) + `">`)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loramix report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { border-bottom: 2px solid #0072b2; padding-bottom: .3rem; }
h2 { margin-top: 2.5rem; color: #0b4f7c; }
figure { margin: 1.5rem 0; padding: 1rem; border: 1px solid #ddd; border-radius: 6px; background: #fff; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: .92rem; color: #444; margin-top: .5rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .88rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; white-space: nowrap; }
.scroll { overflow-x: auto; }
th { background: #eef4f9; }
td:first-child, th:first-child { text-align: left; font-family: ui-monospace, Menlo, Consolas, monospace; }
tr:nth-child(even) td { background: #fafafa; }
.note { color: #8a4b00; }
.meta { color: #555; font-size: .9rem; }
</style>
</head>
<body>
<h1>loramix report</h1>
<p class="meta">Generated {{.Generated}} from {{len .Inputs}} results file(s){{if .Bench}} and benchmark records{{end}}.</p>

<h2>Charts</h2>
{{range .Charts}}<figure id="{{.Name}}">
{{img .PNG .Title}}
<figcaption><strong>{{.Title}}.</strong> {{.Caption}} Files: <code>{{.Name}}.png</code>, <code>{{.Name}}.svg</code>.</figcaption>
</figure>
{{else}}<p class="note">No chart could be drawn from these inputs.</p>
{{end}}
{{if .Notes}}<h3>Notes: charts not drawn or drawn in part</h3>
<ul>{{range .Notes}}<li class="note">{{.}}</li>{{end}}</ul>{{end}}

<h2>Tables</h2>
{{range .Tables}}<h3>{{.Title}}</h3>
<div class="scroll"><table>
<thead><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table></div>
{{end}}
<h2>Versions and configuration</h2>
{{range .Provenance}}<h3>{{.Title}}</h3>
<table>
<tbody>{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{end}}
</body>
</html>
`))

type htmlChart struct {
	Name, Title, Caption string
	PNG                  []byte
}

func writeHTML(r *Report) error {
	var charts []htmlChart
	for _, c := range r.Charts {
		charts = append(charts, htmlChart{c.Name, c.Title, c.Caption, c.png})
	}
	var buf bytes.Buffer
	err := htmlPage.Execute(&buf, map[string]any{
		"Generated":  r.in.Now.UTC().Format("2006-01-02 15:04 MST"),
		"Inputs":     r.in.Results,
		"Bench":      len(r.in.Merge)+len(r.in.Throughput) > 0,
		"Charts":     charts,
		"Notes":      r.Notes,
		"Tables":     r.tables,
		"Provenance": provenance(r.in.Results, r.in.ResultPaths),
	})
	if err != nil {
		return err
	}
	return safetensors.WriteFileAtomic(r.HTML, buf.Bytes())
}

func writeMarkdown(r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# loramix report\n\nGenerated %s from %d results file(s).\n\n## Charts\n\n",
		r.in.Now.UTC().Format("2006-01-02 15:04 MST"), len(r.in.Results))
	for _, c := range r.Charts {
		fmt.Fprintf(&b, "### %s\n\n![%s](%s.png)\n\n%s ([SVG](%s.svg))\n\n", c.Title, c.Title, c.Name, c.Caption, c.Name)
	}
	if len(r.Charts) == 0 {
		b.WriteString("No chart could be drawn from these inputs.\n\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("### Notes: charts not drawn or drawn in part\n\n")
		for _, s := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Tables\n\n")
	for _, t := range r.tables {
		writeMDTable(&b, t)
	}
	b.WriteString("## Versions and configuration\n\n")
	for _, t := range provenance(r.in.Results, r.in.ResultPaths) {
		writeMDTable(&b, t)
	}
	return safetensors.WriteFileAtomic(r.Markdown, []byte(b.String()))
}

func writeMDTable(b *strings.Builder, t table) {
	cell := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
	fmt.Fprintf(b, "### %s\n\n|", t.Title)
	for _, h := range t.Header {
		fmt.Fprintf(b, " %s |", cell(h))
	}
	b.WriteString("\n|")
	for i := range t.Header {
		if i == 0 {
			b.WriteString("---|")
		} else {
			b.WriteString("---:|")
		}
	}
	b.WriteString("\n")
	for _, row := range t.Rows {
		b.WriteString("|")
		for _, c := range row {
			fmt.Fprintf(b, " %s |", cell(c))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}
