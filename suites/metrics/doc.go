// Package metrics scores generated text: sacreBLEU-exact BLEU, chrF and
// chrF++ (corpus and sentence level, with the sacreBLEU 2.6.0 score lines and
// signatures), bootstrap confidence intervals and paired bootstrap tests,
// response length, repetition and loop detection, format-adherence rules and
// routing by attribution, and the routing matrix.
//
// Everything here is a pure function of its inputs: no model, no engine.
//
// Parity: BLEU, chrF and chrF++ match sacreBLEU 2.6.0 with its defaults
// (13a tokenizer, mixed case, exp smoothing, chrF effective order) to within
// 1e-9, checked against goldens written by reference/sacrebleu_golden.py. The
// bootstrap follows sacreBLEU's procedure (1000 resamples, the n/40 order
// statistics for the 95% interval, the shifted-difference p-value) but uses
// Go's PCG generator, so individual resamples differ from numpy's.
package metrics
