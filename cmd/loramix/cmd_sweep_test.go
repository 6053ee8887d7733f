package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/tokenizer/tokenizertest"
	"loramix/suites/results"
)

// sweepWorld writes, for the tiny checkpoint, a byte-level tokenizer (its
// 260 tokens fit the tiny vocabulary), a task "echo" with six examples, and
// returns the flags that point sweep and search at them.
func sweepWorld() []string {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	_, err := tokenizertest.WriteByteLevel(dir)
	Expect(err).NotTo(HaveOccurred())

	Expect(os.MkdirAll(filepath.Join(dir, "tasks"), 0o755)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(dir, "tasks", "echo.yaml"), []byte(`name: echo
version: "1"
dataset: {dir: data, split: test}
prompt: "{{.source}} ###>"
reference_field: target
stop: ["\n"]
max_new_tokens: 5
metrics:
  - {name: bleu, higher_is_better: true}
  - {name: length_words, higher_is_better: true}
`), 0o644)).To(Succeed())
	Expect(os.MkdirAll(filepath.Join(dir, "data"), 0o755)).To(Succeed())
	var lines []byte
	for i, src := range []string{"le chat", "un deux trois", "bonjour", "la maison bleue", "il pleut", "oui"} {
		rec, _ := json.Marshal(map[string]string{"source": src, "target": fmt.Sprintf("target %d", i)})
		lines = append(append(lines, rec...), '\n')
	}
	Expect(os.WriteFile(filepath.Join(dir, "data", "test.jsonl"), lines, 0o644)).To(Succeed())

	tiny := filepath.Join("..", "..", "testdata", "tiny", "llama-mha")
	return []string{"--model", tiny, "--tokenizer", filepath.Join(dir, "tokenizer.json"), "--quant", "fp32",
		"--threads", "2", "--batch", "8", "--tasks-dir", filepath.Join(dir, "tasks"), "--data", dir, "--task", "echo",
		"--adapter", "mlp=" + filepath.Join(tiny, "adapters", "mlp-r8"), "--adapter", "attn=" + filepath.Join(tiny, "adapters", "attn-rs4")}
}

var _ = Describe("loramix sweep, search and report on the tiny checkpoint", Ordered, func() {
	var world []string
	var out string
	BeforeAll(func() {
		world = sweepWorld()
		out = GinkgoT().TempDir()
	})

	It("sweeps a grid, and a second run evaluates nothing", func() {
		args := append(append([]string{}, world...), "--method", "cat,svd", "--weights-grid", "0:1:0.5", "--out", out, "--quiet")
		var w bytes.Buffer
		Expect(runSweep(args, &w)).To(Succeed())
		Expect(w.String()).To(ContainSubstring("sweep: 18 points, 0 done before, 18 evaluated now"))
		f, err := results.Read(filepath.Join(out, "sweep.jsonl"))
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Records).To(HaveLen(18))
		for _, r := range f.Records {
			Expect(r.Task).To(Equal("echo"))
			Expect(r.Metrics).To(HaveKey("bleu"))
			Expect(r.Lengths).To(HaveLen(6))
		}
		w.Reset()
		Expect(runSweep(args, &w)).To(Succeed())
		Expect(w.String()).To(ContainSubstring("sweep: 18 points, 18 done before, 0 evaluated now"))
		info, err := results.Read(filepath.Join(out, "sweep-info.json"))
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config).To(HaveKeyWithValue("weights_grid", "0:1:0.5"))
		Expect(info.Versions).To(HaveKey("go"))
	})

	It("searches the weights and prints the best and the front", func() {
		args := append(append([]string{}, world...), "--method", "cat", "--budget", "6", "--resolution", "0.1",
			"--objective", "maximize bleu(echo) subject to length_words(echo) >= 1", "--out", out)
		var w bytes.Buffer
		Expect(runSearch(args, &w)).To(Succeed())
		Expect(w.String()).To(MatchRegexp(`evaluated [1-6] systems`))
		Expect(w.String()).To(MatchRegexp(`best: cat\[[0-9.]+,[0-9.]+\]\(mlp,attn\)`))
		f, err := results.Read(filepath.Join(out, "search.jsonl"))
		Expect(err).NotTo(HaveOccurred())
		Expect(len(f.Records)).To(BeNumerically(">=", 1))
	})

	It("reports on both, listing what it drew", func() {
		rep := filepath.Join(out, "report")
		var w bytes.Buffer
		Expect(runReport([]string{filepath.Join(out, "sweep.jsonl"), filepath.Join(out, "sweep-info.json"),
			filepath.Join(out, "search.jsonl"), "--out", rep}, &w)).To(Succeed())
		Expect(w.String()).To(ContainSubstring("drew bleu-heatmap-cat-echo"))
		Expect(w.String()).To(ContainSubstring("drew bleu-heatmap-svd-echo"))
		Expect(w.String()).To(ContainSubstring("drew lengths-echo"))
		Expect(w.String()).To(ContainSubstring("note: merge time against rank: no merge timings given"))
		Expect(w.String()).To(ContainSubstring("report.html"))
		Expect(filepath.Join(rep, "report.html")).To(BeARegularFile())
		Expect(filepath.Join(rep, "report.md")).To(BeARegularFile())
	})

	DescribeTable("bad flags name the problem",
		func(run func([]string) error, want string, args ...string) {
			Expect(run(args)).To(MatchError(ContainSubstring(want)))
		},
		Entry("sweep without --out", func(a []string) error { return runSweep(a, &bytes.Buffer{}) }, "--out DIR is required",
			"--synthetic", "--adapter", "a", "--adapter", "b", "--task", "t"),
		Entry("sweep of one adapter", func(a []string) error { return runSweep(a, &bytes.Buffer{}) }, "at least 2 adapters",
			"--synthetic", "--adapter", "a", "--task", "t", "--out", "x"),
		Entry("sweep with a bad grid", func(a []string) error { return runSweep(a, &bytes.Buffer{}) }, "stop is below start",
			"--synthetic", "--adapter", "a", "--adapter", "b", "--task", "t", "--weights-grid", "1:0:0.1", "--out", "x"),
		Entry("sweep with a bad shard", func(a []string) error { return runSweep(a, &bytes.Buffer{}) }, "want i/n",
			"--synthetic", "--adapter", "a", "--adapter", "b", "--task", "t", "--shard", "2/2", "--out", "x"),
		Entry("sweep without a model", func(a []string) error { return runSweep(a, &bytes.Buffer{}) }, "--model is required",
			"--adapter", "a=x", "--adapter", "b=y", "--task", "t", "--out", "x"),
		Entry("search without an objective", func(a []string) error { return runSearch(a, &bytes.Buffer{}) }, "--objective is required",
			"--synthetic", "--adapter", "a", "--task", "t", "--out", "x"),
		Entry("search with bad bounds", func(a []string) error { return runSearch(a, &bytes.Buffer{}) }, `--bounds "0:1,2"`,
			"--synthetic", "--adapter", "a", "--adapter", "b", "--task", "t", "--objective", "max bleu(t)", "--bounds", "0:1,2", "--out", "x"),
		Entry("report without inputs", func(a []string) error { return runReport(a, &bytes.Buffer{}) }, "name at least one",
			"--out", "x"),
		Entry("report of a missing file", func(a []string) error { return runReport(a, &bytes.Buffer{}) }, "missing.jsonl",
			"missing.jsonl", "--out", "x"),
	)
})
