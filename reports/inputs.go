// Package reports draws the charts of an evaluation with gonum/plot (PNG and
// SVG) and writes a self-contained report.html and a report.md with the
// tables, versions and configuration.
//
// Build takes results files (suites/results) and benchmark records
// (MergeTiming, Throughput), draws every chart its inputs support, and notes
// in the report each chart it skipped and why.
package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MergeTiming is one point of the merge benchmark: the time to merge
// Modules modules of two adapters of rank Rank with the SVD combination,
// computed the low-rank way (QR of the stacked factors and an SVD of the
// small core) and with the full out x in matrix. `loramix bench merge` can
// write a JSON array of them.
type MergeTiming struct {
	Rank           int     `json:"rank"`
	LowRankSeconds float64 `json:"low_rank_seconds"` // all Modules modules
	FullSeconds    float64 `json:"full_seconds"`     // all Modules modules (may be one module's time times Modules)
	Modules        int     `json:"modules"`
}

// Throughput is one point of the generation benchmark: tokens per second at
// one batch size on one device. The records `loramix bench generate --json`
// prints and the results of its CUDA report read as Throughput directly
// (extra fields are ignored; a "shape" stands in for a missing "model").
type Throughput struct {
	Device      string  `json:"device"`          // "cpu", "cuda", or the card's name
	Card        string  `json:"card,omitempty"`  // e.g. "NVIDIA H100 80GB HBM3" or the CPU model
	Model       string  `json:"model,omitempty"` // what ran, e.g. "llama-2-7b"
	Quant       string  `json:"quant,omitempty"` // "nf4", "fp16", ...
	Batch       int     `json:"batch"`
	PrefillTokS float64 `json:"prefill_tok_s"`
	DecodeTokS  float64 `json:"decode_tok_s"`
	// Run names the file the record came from (ReadBench: its base name
	// without the extension). Charts and tables add it to a series only
	// where records of one device, model and quantization come from
	// several runs (say, two versions' records of one card).
	Run string `json:"-"`
}

// series names the line a Throughput belongs to.
func (t Throughput) series() string {
	var parts []string
	for _, p := range []string{t.Device, t.Card, t.Model, t.Quant} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// seriesNames names each record's line (names[i]): its series, and its
// run (runs[i], else "") where the series has records from more than one
// run. The runs' common prefix up to a '-', '_' or '.' is left out
// ("generate-cuda-…-v9" and "…-v10" read v9 and v10).
func seriesNames(ts []Throughput) (names, runs []string) {
	seen := map[string][]string{}
	for _, t := range ts {
		if !slices.Contains(seen[t.series()], t.Run) {
			seen[t.series()] = append(seen[t.series()], t.Run)
		}
	}
	names, runs = make([]string, len(ts)), make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.series()
		if rs := seen[t.series()]; len(rs) > 1 && t.Run != "" {
			runs[i] = t.Run[commonStem(rs):]
			names[i] += " (" + runs[i] + ")"
		}
	}
	return names, runs
}

// commonStem is the length of the names' common prefix, cut back to just
// after its last '-', '_' or '.'.
func commonStem(names []string) int {
	n := len(names[0])
	for _, s := range names[1:] {
		k := 0
		for k < n && k < len(s) && s[k] == names[0][k] {
			k++
		}
		n = k
	}
	return strings.LastIndexAny(names[0][:n], "-_.") + 1
}

// ReadBench reads a benchmark file: JSON objects, as one object, an array,
// or one per line (JSONL). An object with a "results" array stands for its
// elements. Each record is a MergeTiming (it has "low_rank_seconds") or a
// Throughput (it has "batch" and "decode_tok_s" or "prefill_tok_s").
// Anything else is an error naming the file and the record.
func ReadBench(path string) ([]MergeTiming, []Throughput, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var objs []map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			return nil, nil, fmt.Errorf("bench %s: want JSON objects, an array of them, or one per line: %v", path, err)
		}
		var arr []map[string]json.RawMessage
		var one map[string]json.RawMessage
		if json.Unmarshal(v, &arr) == nil {
			objs = append(objs, arr...)
		} else if err := json.Unmarshal(v, &one); err == nil {
			objs = append(objs, one)
		} else {
			return nil, nil, fmt.Errorf("bench %s: record %d is not a JSON object", path, len(objs))
		}
	}
	// A report object stands for its results.
	var recs []map[string]json.RawMessage
	for _, o := range objs {
		var inner []map[string]json.RawMessage
		if r, ok := o["results"]; ok && json.Unmarshal(r, &inner) == nil {
			recs = append(recs, inner...)
		} else {
			recs = append(recs, o)
		}
	}

	var merges []MergeTiming
	var thr []Throughput
	for i, o := range recs {
		raw, _ := json.Marshal(o)
		switch {
		case o["low_rank_seconds"] != nil:
			var m MergeTiming
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, nil, fmt.Errorf("bench %s: record %d: %v", path, i, err)
			}
			merges = append(merges, m)
		case o["batch"] != nil && (o["decode_tok_s"] != nil || o["prefill_tok_s"] != nil):
			var t Throughput
			if err := json.Unmarshal(raw, &t); err != nil {
				return nil, nil, fmt.Errorf("bench %s: record %d: %v", path, i, err)
			}
			if t.Model == "" && o["shape"] != nil {
				json.Unmarshal(o["shape"], &t.Model)
			}
			t.Run = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
			thr = append(thr, t)
		default:
			return nil, nil, fmt.Errorf("bench %s: record %d is neither a merge timing (low_rank_seconds) nor a throughput (batch, decode_tok_s)", path, i)
		}
	}
	return merges, thr, nil
}
