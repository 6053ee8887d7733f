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
	"os"
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
// one batch size on one device.
type Throughput struct {
	Device      string  `json:"device"` // "cpu" or "cuda"
	Card        string  `json:"card"`   // e.g. "NVIDIA H100 80GB HBM3" or the CPU model
	Batch       int     `json:"batch"`
	PrefillTokS float64 `json:"prefill_tok_s"`
	DecodeTokS  float64 `json:"decode_tok_s"`
}

// ReadBench reads a benchmark JSON file: an object or an array of objects,
// each a MergeTiming (it has "low_rank_seconds") or a Throughput (it has
// "batch"). Anything else is an error naming the file and the entry.
func ReadBench(path string) ([]MergeTiming, []Throughput, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	data = bytes.TrimSpace(data)
	var raws []json.RawMessage
	if len(data) > 0 && data[0] == '{' {
		raws = []json.RawMessage{data}
	} else if err := json.Unmarshal(data, &raws); err != nil {
		return nil, nil, fmt.Errorf("bench %s: want a JSON object or array: %v", path, err)
	}
	var merges []MergeTiming
	var thr []Throughput
	for i, raw := range raws {
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil {
			return nil, nil, fmt.Errorf("bench %s: entry %d: %v", path, i, err)
		}
		switch {
		case keys["low_rank_seconds"] != nil:
			var m MergeTiming
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, nil, fmt.Errorf("bench %s: entry %d: %v", path, i, err)
			}
			merges = append(merges, m)
		case keys["batch"] != nil:
			var t Throughput
			if err := json.Unmarshal(raw, &t); err != nil {
				return nil, nil, fmt.Errorf("bench %s: entry %d: %v", path, i, err)
			}
			thr = append(thr, t)
		default:
			return nil, nil, fmt.Errorf("bench %s: entry %d is neither a merge timing (low_rank_seconds) nor a throughput (batch)", path, i)
		}
	}
	return merges, thr, nil
}
