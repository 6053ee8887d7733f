package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"

	"loramix/engine/adapter"
	"loramix/engine/merge"
	"loramix/engine/safetensors"
	"loramix/reports"
)

// `loramix bench merge` times the low-rank SVD merge of random adapters on a
// Llama-shaped model against gonum's full-matrix SVD of one module.
func init() {
	registerBench("merge", "svd merge of random adapters vs full-matrix SVD: merge [--shape llama-2-7b] [--rank 16] [--adapters 2]",
		func(args []string) error { return runBenchMerge(args, os.Stdout) })
}

// benchShapes are the model shapes the merge benchmark knows: layers,
// hidden size, intermediate size.
var benchShapes = map[string][3]int{
	"llama-2-7b":  {32, 4096, 11008},
	"llama-2-13b": {40, 5120, 13824},
	"tiny":        {2, 64, 96}, // for tests
}

func runBenchMerge(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("bench merge", flag.ContinueOnError)
	shape := fs.String("shape", "llama-2-7b", "model shape: llama-2-7b, llama-2-13b or tiny")
	rank := fs.Int("rank", 16, "rank of each random adapter")
	n := fs.Int("adapters", 2, "number of adapters merged")
	reps := fs.Int("reps", 3, "timed repetitions of the whole-model merge (the best is reported)")
	jsonOut := fs.String("json", "", "append the timing to this JSON array file (reports.MergeTiming records, for loramix report --bench)")
	scale := fs.Int("full-scale", 4, "time the full-matrix SVD on the module's dimensions divided by this and scale the time by scale^3 (gonum's SVD is O(out in min(out, in))); 1 times the real module, which takes many minutes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dims, ok := benchShapes[*shape]
	if !ok {
		return fmt.Errorf("--shape %q: want llama-2-7b, llama-2-13b or tiny", *shape)
	}
	if *rank <= 0 || *n <= 0 || *reps <= 0 || *scale <= 0 {
		return fmt.Errorf("--rank, --adapters, --reps and --full-scale must be positive")
	}
	layers, hidden, inter := dims[0], dims[1], dims[2]
	shapes := merge.MLPShapes(layers, hidden, inter)
	ads := make([]*adapter.Adapter, *n)
	weights := make([]float64, *n)
	for i := range ads {
		ads[i] = merge.RandomAdapter(fmt.Sprintf("random%d", i), shapes, *rank, float64(2**rank), uint64(i+1))
		weights[i] = 1
	}
	fmt.Fprintf(w, "shape %s: %d layers, gate/up/down %dx%d: %d modules; %d random adapters of rank %d; GOMAXPROCS %d\n",
		*shape, layers, inter, hidden, len(shapes), *n, *rank, runtime.GOMAXPROCS(0))

	opts := merge.Options{Method: merge.SVDMethod, Weights: weights}
	best := time.Duration(1 << 62)
	var cpu time.Duration
	var res *merge.Result
	for r := 0; r < *reps; r++ {
		runtime.GC()
		c0 := cpuTime()
		t0 := time.Now()
		out, err := merge.Merge(ads, opts)
		if err != nil {
			return err
		}
		if d := time.Since(t0); d < best {
			best, cpu, res = d, cpuTime()-c0, out
		}
	}
	fmt.Fprintf(w, "low-rank svd merge: %d modules in %.3f s wall, %.3f s CPU (best of %d); new r=%d, lora_alpha=%g\n",
		len(shapes), best.Seconds(), cpu.Seconds(), *reps, res.Rank, res.Alpha)

	// The full-matrix reference: PEFT's path (form the delta, SVD it) on one
	// module, optionally shrunk by --full-scale.
	ref := shapes[0]
	out, in := ref.Out / *scale, ref.In / *scale
	small := merge.MLPShapes(1, in, out)[:1]
	refAds := make([]*adapter.Adapter, *n)
	for i := range refAds {
		refAds[i] = merge.RandomAdapter("ref", small, *rank, float64(2**rank), uint64(100+i))
	}
	t0 := time.Now()
	full, err := merge.Merge(refAds, merge.Options{Method: merge.SVDMethod, Weights: weights, FullMatrix: true})
	if err != nil {
		return err
	}
	fullTime := time.Since(t0).Seconds()
	low, err := merge.Merge(refAds, opts)
	if err != nil {
		return err
	}
	name := small[0].Name
	diff := merge.RelativeDifference(low.Adapter.Modules[name], full.Adapter.Modules[name])
	perModule := fullTime * float64(*scale**scale**scale)
	if *scale == 1 {
		fmt.Fprintf(w, "full-matrix reference: %s (%dx%d): %.2f s (form delta + gonum thin SVD)\n", ref.Name, out, in, fullTime)
	} else {
		fmt.Fprintf(w, "full-matrix reference: %dx%d (1/%d of %dx%d) in %.2f s, x%d = %.1f s per full module (form delta + gonum thin SVD)\n",
			out, in, *scale, ref.Out, ref.In, fullTime, *scale**scale**scale, perModule)
	}
	fmt.Fprintf(w, "check: low-rank vs full-matrix merged update, relative difference %.2g\n", diff)
	fmt.Fprintf(w, "svd-merge: %d modules in %.3f s; full-matrix reference %.1f s per module; speedup %.0f\n",
		len(shapes), best.Seconds(), perModule, perModule*float64(len(shapes))/best.Seconds())
	if *jsonOut != "" {
		return appendMergeTiming(*jsonOut, reports.MergeTiming{Rank: *rank, LowRankSeconds: best.Seconds(),
			FullSeconds: perModule * float64(len(shapes)), Modules: len(shapes)})
	}
	return nil
}

// appendMergeTiming adds t to the JSON array in path (created if absent),
// atomically.
func appendMergeTiming(path string, t reports.MergeTiming) error {
	var all []reports.MergeTiming
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &all); err != nil {
			return fmt.Errorf("%s: not a JSON array of merge timings: %v", path, err)
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	data, err := json.MarshalIndent(append(all, t), "", "  ")
	if err != nil {
		return err
	}
	return safetensors.WriteFileAtomic(path, append(data, '\n'))
}

// cpuTime returns the user plus system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
