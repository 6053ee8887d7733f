package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"loramix/engine/adapter"
	"loramix/engine/checkpoint"
	"loramix/engine/llama"
)

// `loramix inspect` describes a model or an adapter, and with one of each
// whether the adapter fits the model.
func init() {
	register("inspect", "describe a model or adapter (folder or cached hub id): inspect PATH [PATH2] [--json]",
		func(args []string) error { return runInspect(args, os.Stdout) })
}

// inspectOptions are inspect's flags. Model-specific options (such as a
// quantized view of the weights) add a field here, a flag in
// inspectFlagSet and a section in describeModel.
type inspectOptions struct {
	JSON bool
	NF4  bool // quantize the decoder's linear layers and report error and memory
}

func inspectFlagSet(o *inspectOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.BoolVar(&o.JSON, "json", false, "write one JSON object instead of text")
	fs.BoolVar(&o.NF4, "nf4", false, "quantize the model's decoder linear layers to NF4: error per layer and memory footprint")
	return fs
}

// inspectReport is what inspect finds; --json writes it as is.
type inspectReport struct {
	Model   *modelReport   `json:"model,omitempty"`
	Adapter *adapterReport `json:"adapter,omitempty"`
	Fit     *fitReport     `json:"fit,omitempty"`
}

type tensorRow struct {
	Name   string `json:"name"` // with "N" for the layer index in per-layer rows
	Shape  []int  `json:"shape"`
	DType  string `json:"dtype"`
	Layers int    `json:"layers,omitempty"` // how many layers have it; 0 for global tensors
}

type modelReport struct {
	Path                  string           `json:"path"`
	Dir                   string           `json:"dir"`
	Architectures         []string         `json:"architectures"`
	Layers                int              `json:"layers"`
	Hidden                int              `json:"hidden_size"`
	Intermediate          int              `json:"intermediate_size"`
	Heads                 int              `json:"attention_heads"`
	KVHeads               int              `json:"kv_heads"`
	HeadDim               int              `json:"head_dim"`
	Vocab                 int              `json:"vocab_size"`
	MaxPositions          int              `json:"max_position_embeddings"`
	RMSNormEps            float64          `json:"rms_norm_eps"`
	RopeTheta             float64          `json:"rope_theta"`
	RopeLinearScaling     float64          `json:"rope_linear_scaling"`
	TiedEmbeddings        bool             `json:"tie_word_embeddings"`
	BOS                   int              `json:"bos_token_id"`
	EOS                   []int            `json:"eos_token_ids"`
	Weights               string           `json:"weights"`
	DTypes                map[string]int   `json:"dtypes"` // tensor count per dtype
	Parameters            int64            `json:"parameters"`
	Bytes                 int64            `json:"bytes"`
	Tensors               []tensorRow      `json:"tensors"`
	GenerationMaxNewToken int              `json:"generation_max_new_tokens,omitempty"`
	NF4                   *llama.NF4Report `json:"nf4,omitempty"`
}

type moduleRow struct {
	Name    string  `json:"name"`
	R       int     `json:"r"`
	Alpha   float64 `json:"alpha"`
	Scaling float64 `json:"scaling"`
	In      int     `json:"in"`
	Out     int     `json:"out"`
}

type adapterReport struct {
	Path          string             `json:"path"`
	Dir           string             `json:"dir"`
	PeftType      string             `json:"peft_type"`
	Base          string             `json:"base_model_name_or_path"`
	R             int                `json:"r"`
	Alpha         float64            `json:"lora_alpha"`
	RSLoRA        bool               `json:"use_rslora"`
	TargetModules any                `json:"target_modules"`
	RankPattern   map[string]int     `json:"rank_pattern,omitempty"`
	AlphaPattern  map[string]float64 `json:"alpha_pattern,omitempty"`
	Layers        []int              `json:"layers_to_transform,omitempty"`
	Targets       []string           `json:"targets"` // module kinds, e.g. gate_proj
	Parameters    int64              `json:"parameters"`
	Modules       []moduleRow        `json:"modules"`
}

type fitReport struct {
	Fits     bool     `json:"fits"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// errNoFit makes inspect exit non-zero after reporting that the adapter does not fit.
var errNoFit = errors.New("the adapter does not fit the model")

func runInspect(args []string, out io.Writer) error {
	var o inspectOptions
	fs := inspectFlagSet(&o)
	// Flags may come before or after the paths.
	var paths []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(paths) == 0 || len(paths) > 2 {
		return fmt.Errorf("want one or two paths (a model, an adapter, or one of each), got %d", len(paths))
	}
	var rep inspectReport
	var model *checkpoint.Model
	var ad *adapter.Adapter
	for _, p := range paths {
		dir, err := checkpoint.Resolve(p)
		if err != nil {
			return err
		}
		switch {
		case exists(filepath.Join(dir, adapter.ConfigFile)):
			if ad != nil {
				return fmt.Errorf("%s and %s are both adapters; give a model and an adapter", ad.Dir, p)
			}
			if ad, err = adapter.Load(p); err != nil {
				return err
			}
			rep.Adapter = describeAdapter(p, ad)
		case exists(filepath.Join(dir, "config.json")):
			if model != nil {
				return fmt.Errorf("%s and %s are both models; give a model and an adapter", model.Name, p)
			}
			if model, err = checkpoint.Open(p); err != nil {
				return err
			}
			defer model.Close()
			if rep.Model, err = describeModel(p, model, o); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s has neither config.json (a model) nor %s (an adapter)", dir, adapter.ConfigFile)
		}
	}
	if model != nil && ad != nil {
		warns, err := adapter.Validate(ad, model.Config, model.Weights)
		rep.Fit = &fitReport{Fits: err == nil, Warnings: warns}
		if err != nil {
			rep.Fit.Error = err.Error()
		}
	}
	if o.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		writeInspect(out, &rep)
	}
	if rep.Fit != nil && !rep.Fit.Fits {
		return errNoFit
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func describeModel(path string, m *checkpoint.Model, o inspectOptions) (*modelReport, error) {
	c := m.Config
	r := &modelReport{
		Path: path, Dir: m.Dir, Architectures: c.Architectures,
		Layers: c.NumHiddenLayers, Hidden: c.HiddenSize, Intermediate: c.IntermediateSize,
		Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim(),
		Vocab: c.VocabSize, MaxPositions: c.MaxPositionEmbeddings, RMSNormEps: c.RMSNormEps,
		RopeTheta: c.RopeTheta, RopeLinearScaling: c.RopeFactor(), TiedEmbeddings: c.TieWordEmbeddings,
		BOS: c.BOSTokenID, EOS: c.EOS(), DTypes: map[string]int{},
		GenerationMaxNewToken: c.Generation.MaxNewTokens,
	}
	files := map[string]bool{}
	rows := map[string]*tensorRow{}
	var order []string
	for _, name := range m.Weights.Names() {
		info, _ := m.Weights.Info(name)
		files[filepath.Base(info.File)] = true
		r.DTypes[string(info.DType)]++
		r.Parameters += int64(info.NumElements())
		r.Bytes += int64(info.NumElements() * info.DType.Size())
		key, layer := name, -1
		if _, l, ok := checkpoint.ParseName(name); ok && l >= 0 {
			key, layer = strings.Replace(name, fmt.Sprintf(".%d.", l), ".N.", 1), l
		}
		row, seen := rows[key]
		if !seen {
			row = &tensorRow{Name: key, Shape: info.Shape, DType: string(info.DType)}
			rows[key] = row
			order = append(order, key)
		}
		if layer >= 0 {
			row.Layers++
		}
	}
	// Table order: the order of the name table (layer 0 standing for all
	// layers), then anything else by name.
	pos := map[string]int{}
	for i, e := range c.Expected() {
		if e.Layer <= 0 {
			pos[strings.Replace(e.Name, ".0.", ".N.", 1)] = i
		}
	}
	rank := func(k string) int {
		if i, ok := pos[k]; ok {
			return i
		}
		return len(pos)
	}
	sort.SliceStable(order, func(i, j int) bool { return rank(order[i]) < rank(order[j]) })
	for _, k := range order {
		r.Tensors = append(r.Tensors, *rows[k])
	}
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	r.Weights = strings.Join(names, ", ")
	if len(names) > 2 {
		r.Weights = fmt.Sprintf("%d shards (%s ... %s)", len(names), names[0], names[len(names)-1])
	}
	if o.NF4 {
		var err error
		if r.NF4, err = llama.InspectNF4(c, m.Weights); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func describeAdapter(path string, a *adapter.Adapter) *adapterReport {
	c := a.Config
	r := &adapterReport{
		Path: path, Dir: a.Dir, PeftType: c.PeftType, Base: c.BaseModelNameOrPath,
		R: c.R, Alpha: c.LoraAlpha, RSLoRA: c.UseRSLoRA, RankPattern: c.RankPattern,
		AlphaPattern: c.AlphaPattern, Layers: c.LayersToTransform, TargetModules: c.TargetModules.Names,
	}
	if c.TargetModules.Regex != "" {
		r.TargetModules = c.TargetModules.Regex
	}
	kinds := map[string]bool{}
	for _, name := range a.ModuleNames() {
		m := a.Modules[name]
		kinds[name[strings.LastIndex(name, ".")+1:]] = true
		r.Parameters += int64(len(m.A) + len(m.B))
		r.Modules = append(r.Modules, moduleRow{Name: name, R: m.R, Alpha: m.Alpha, Scaling: m.Scaling(), In: m.In, Out: m.Out})
	}
	for k := range kinds {
		r.Targets = append(r.Targets, k)
	}
	sort.Strings(r.Targets)
	return r
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func writeInspect(out io.Writer, rep *inspectReport) {
	if m := rep.Model; m != nil {
		fmt.Fprintf(out, "model %s\n", m.Path)
		if m.Dir != m.Path {
			fmt.Fprintf(out, "  folder        %s\n", m.Dir)
		}
		attn := "multi-head"
		if m.KVHeads < m.Heads {
			attn = fmt.Sprintf("grouped-query, %d query heads per kv head", m.Heads/m.KVHeads)
		}
		fmt.Fprintf(out, "  architecture  %s, %d layers, hidden %d, intermediate %d\n", strings.Join(m.Architectures, ","), m.Layers, m.Hidden, m.Intermediate)
		fmt.Fprintf(out, "  attention     %d heads, %d kv heads (%s), head dim %d\n", m.Heads, m.KVHeads, attn, m.HeadDim)
		rope := fmt.Sprintf("theta %g", m.RopeTheta)
		if m.RopeLinearScaling != 1 {
			rope += fmt.Sprintf(", linear scaling %g", m.RopeLinearScaling)
		}
		fmt.Fprintf(out, "  positions     rope %s, max %d; rms_norm_eps %g\n", rope, m.MaxPositions, m.RMSNormEps)
		fmt.Fprintf(out, "  vocabulary    %d, bos %d, eos %v, tied embeddings %s\n", m.Vocab, m.BOS, m.EOS, yesNo(m.TiedEmbeddings))
		dts := make([]string, 0, len(m.DTypes))
		for d, n := range m.DTypes {
			dts = append(dts, fmt.Sprintf("%s x%d", d, n))
		}
		sort.Strings(dts)
		fmt.Fprintf(out, "  weights       %s: %s parameters, %s, %s\n", m.Weights, thousands(m.Parameters), humanBytes(m.Bytes), strings.Join(dts, ", "))
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  tensor\tshape\tdtype\t")
		for _, t := range m.Tensors {
			name := t.Name
			if t.Layers > 0 {
				name += fmt.Sprintf(" (x%d)", t.Layers)
			}
			fmt.Fprintf(tw, "  %s\t%v\t%s\t\n", name, t.Shape, t.DType)
		}
		tw.Flush()
		if q := m.NF4; q != nil {
			writeNF4(out, q)
		}
	}
	if a := rep.Adapter; a != nil {
		if rep.Model != nil {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "adapter %s\n", a.Path)
		if a.Dir != a.Path {
			fmt.Fprintf(out, "  folder        %s\n", a.Dir)
		}
		scaling := "alpha/r"
		if a.RSLoRA {
			scaling = "alpha/sqrt(r) (rsLoRA)"
		}
		fmt.Fprintf(out, "  type          %s on %s, r %d, alpha %g, scaling %s\n", a.PeftType, orNone(a.Base), a.R, a.Alpha, scaling)
		fmt.Fprintf(out, "  targets       %v -> %s, %d modules, %s parameters\n", a.TargetModules, strings.Join(a.Targets, ", "), len(a.Modules), thousands(a.Parameters))
		if len(a.RankPattern) > 0 || len(a.AlphaPattern) > 0 {
			fmt.Fprintf(out, "  patterns      rank %v, alpha %v\n", a.RankPattern, a.AlphaPattern)
		}
		if len(a.Layers) > 0 {
			fmt.Fprintf(out, "  layers        %v\n", a.Layers)
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  module\tr\talpha\tscaling\tin\tout\t")
		for _, m := range a.Modules {
			fmt.Fprintf(tw, "  %s\t%d\t%g\t%.4g\t%d\t%d\t\n", m.Name, m.R, m.Alpha, m.Scaling, m.In, m.Out)
		}
		tw.Flush()
	}
	if f := rep.Fit; f != nil {
		fmt.Fprintln(out)
		if f.Fits {
			fmt.Fprintln(out, "fits: yes")
		} else {
			fmt.Fprintf(out, "fits: no: %s\n", f.Error)
		}
		for _, w := range f.Warnings {
			fmt.Fprintf(out, "warning: %s\n", w)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(base not recorded)"
	}
	return s
}

// thousands writes n with thin separators: 140096 -> "140,096".
func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeNF4 prints the --nf4 section: per-layer NF4 round-trip error and
// the memory of the quantized model.
func writeNF4(out io.Writer, q *llama.NF4Report) {
	fmt.Fprintf(out, "  nf4           %s linear parameters: %s -> %s (%.3f bits each), relative error %.4f\n",
		thousands(q.LinearParams), humanBytes(q.LinearSourceBytes), humanBytes(q.LinearNF4Bytes), q.BitsPerParam, q.RelErr)
	fmt.Fprintf(out, "  nf4 memory    %s in all (%s kept 16/32-bit: embeddings, norms, lm_head)\n", humanBytes(q.TotalBytes), humanBytes(q.OtherBytes))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  layer\tshape\tsource\tnf4\trel err\tmax abs err\t")
	for _, l := range q.Layers {
		fmt.Fprintf(tw, "  %s\t[%d %d]\t%s\t%s\t%.4f\t%.3g\t\n", l.Name, l.Rows, l.Cols, humanBytes(l.SourceBytes), humanBytes(l.NF4Bytes), l.RelErr, l.MaxAbsErr)
	}
	tw.Flush()
}
