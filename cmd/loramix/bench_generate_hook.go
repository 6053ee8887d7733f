package main

import "io"

// cudaBenchArgs are the flags of `loramix bench generate --device cuda`.
type cudaBenchArgs struct {
	Shape       string // "llama-2-7b"
	Quant       string // "nf4"
	Batches     []int
	Prompt, New int
	LoRARank    int    // > 0: also time batch 1 with a rank-r adapter on gate/up/down
	Out         string // JSON report path ("" = bench/results/generate-cuda-<card>-<date>.json)
	Log         io.Writer
}

// benchGenerateCUDA runs the generation benchmark on the GPU with random
// weights made there. bench_generate_cuda.go sets it in binaries built with
// -tags cuda; it is nil otherwise, and --device cuda must then say so.
var benchGenerateCUDA func(a cudaBenchArgs) error
