package main

import (
	"bytes"
	"path/filepath"
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/adapter"
	"loramix/engine/merge"
)

const mergeInputs = "../../engine/merge/testdata/inputs"

var _ = Describe("loramix merge", func() {
	It("merges, prints r, alpha, time and linear's error, and writes an adapter that loads", func() {
		out := filepath.Join(GinkgoT().TempDir(), "m")
		var w bytes.Buffer
		Expect(runMerge([]string{"--adapter", "a=" + mergeInputs + "/a", "--adapter", "d=" + mergeInputs + "/d",
			"--weights", "0.5,1", "--method", "svd", "--svd-rank", "4", "--out", out}, &w)).To(Succeed())
		Expect(w.String()).To(ContainSubstring("new adapter: r=4, lora_alpha=4, use_rslora=false"))
		Expect(w.String()).To(MatchRegexp(`merge time: [0-9.]+ s`))
		Expect(w.String()).To(MatchRegexp(`svd truncation: relative error 0\.[0-9]+`))
		// linear's cross terms for these adapters (also checked in engine/merge)
		m := regexp.MustCompile(`linear vs exact: relative error ([0-9.e-]+)`).FindStringSubmatch(w.String())
		Expect(m).To(HaveLen(2))
		a, err := adapter.Load(out)
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Config.R).To(Equal(4))
		Expect(a.Modules).To(HaveLen(6))
	})

	It("writes the exact sum with --exact and reports linear's error for unequal ranks as n/a", func() {
		out := filepath.Join(GinkgoT().TempDir(), "m")
		var w bytes.Buffer
		Expect(runMerge([]string{"--adapter", "a=" + mergeInputs + "/a", "--adapter", "b=" + mergeInputs + "/b",
			"--weights", "1,-1", "--method", "linear", "--exact", "--out", out}, &w)).To(Succeed())
		Expect(w.String()).To(ContainSubstring("r=12, lora_alpha=12"))
		Expect(w.String()).To(ContainSubstring("linear vs exact: n/a"))
	})

	DescribeTable("bad flags name the flag",
		func(args []string, want string) {
			args = append(args, "--out", filepath.Join(GinkgoT().TempDir(), "m"))
			err := runMerge(args, &bytes.Buffer{})
			Expect(err).To(MatchError(ContainSubstring(want)))
		},
		Entry("no adapters", []string{"--weights", "1"}, "--adapter"),
		Entry("bad NAME=DIR", []string{"--adapter", "a", "--weights", "1"}, "NAME=DIR"),
		Entry("weights count", []string{"--adapter", "a=" + mergeInputs + "/a", "--adapter", "d=" + mergeInputs + "/d", "--weights", "1"}, "--weights"),
		Entry("weights not numbers", []string{"--adapter", "a=" + mergeInputs + "/a", "--weights", "x"}, "--weights"),
		Entry("unknown method", []string{"--adapter", "a=" + mergeInputs + "/a", "--adapter", "d=" + mergeInputs + "/d", "--weights", "1,1", "--method", "mean"}, "combination_type"),
		Entry("missing adapter dir", []string{"--adapter", "z=/nonexistent", "--weights", "1"}, "--adapter z"),
		Entry("unequal ranks for linear", []string{"--adapter", "a=" + mergeInputs + "/a", "--adapter", "b=" + mergeInputs + "/b", "--weights", "1,1", "--method", "linear"}, "r="),
	)
})

var _ = Describe("loramix rank", func() {
	It("prints each module's singular values and numerical rank", func() {
		var w bytes.Buffer
		Expect(runRank([]string{mergeInputs + "/b"}, &w)).To(Succeed())
		Expect(w.String()).To(MatchRegexp(`model\.layers\.0\.self_attn\.q_proj \(64x64, r=4\): rank 4; singular values( [0-9.e+-]+){4}\n`))
		Expect(w.String()).To(ContainSubstring("numerical rank: 4 to 4 over 6 modules"))
		// the values are the module's: compare the first with the low-rank SVD
		a, err := adapter.Load(mergeInputs + "/b")
		Expect(err).NotTo(HaveOccurred())
		s := merge.Spectrum(a.Modules["model.layers.0.self_attn.q_proj"])
		Expect(w.String()).To(ContainSubstring(formatG(s.S[0])))
	})
	It("needs one directory", func() {
		Expect(runRank(nil, &bytes.Buffer{})).To(MatchError(ContainSubstring("one adapter directory")))
	})
})

var _ = Describe("loramix bench merge", func() {
	It("prints the svd-merge line on a tiny shape", func() {
		var w bytes.Buffer
		Expect(runBenchMerge([]string{"--shape", "tiny", "--rank", "4", "--reps", "1", "--full-scale", "1"}, &w)).To(Succeed())
		Expect(w.String()).To(MatchRegexp(`(?m)^svd-merge: 6 modules in [0-9.]+ s; full-matrix reference [0-9.]+ s per module; speedup [0-9]+\n$`))
		Expect(w.String()).To(MatchRegexp(`relative difference [0-9.e-]+`))
	})
	It("refuses an unknown shape", func() {
		Expect(runBenchMerge([]string{"--shape", "gpt"}, &bytes.Buffer{})).To(MatchError(ContainSubstring("--shape")))
	})
})
