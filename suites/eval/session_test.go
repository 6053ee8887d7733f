package eval_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/llama"
	"loramix/engine/tokenizer/tokenizertest"
	"loramix/suites/eval"
	"loramix/suites/results"
	"loramix/suites/tasks"
)

// byteTokenizer writes a byte-level tokenizer that fits the tiny
// checkpoints' vocabularies.
func byteTokenizer(dir string) string {
	GinkgoHelper()
	path, err := tokenizertest.WriteByteLevel(dir)
	Expect(err).NotTo(HaveOccurred())
	return path
}

const taskYAML = `name: echo
version: "3"
dataset: {dir: data, split: test}
prompt: "{{.source}} ###>"
reference_field: target
stop: ["\n"]
max_new_tokens: 6
metrics:
  - {name: bleu, higher_is_better: true}
  - {name: chrf, higher_is_better: true}
  - {name: length_words, higher_is_better: true}
  - {name: length_tokens, higher_is_better: true}
  - {name: repetition, higher_is_better: false}
  - {name: loop_rate, higher_is_better: false}
  - {name: format_adherence, higher_is_better: true}
format: {non_empty: true}
`

var _ = Describe("a session on a tiny checkpoint", Ordered, func() {
	var (
		dir  string
		cfg  eval.Config
		s    *eval.Session
		task *tasks.Task
		exs  []tasks.Example
	)
	tiny := filepath.Join("..", "..", "testdata", "tiny", "llama-mha")
	cat := results.System{Adapters: []string{"mlp", "attn"}, Method: "cat", Weights: []float64{1, 0.5}}

	BeforeAll(func() {
		dir = GinkgoT().TempDir()
		Expect(os.MkdirAll(filepath.Join(dir, "data"), 0o755)).To(Succeed())
		var lines []byte
		for i, src := range []string{"le chat", "un deux trois", "bonjour", "la maison bleue", "il pleut", "oui"} {
			rec, _ := json.Marshal(map[string]string{"source": src, "target": fmt.Sprintf("target %d", i)})
			lines = append(append(lines, rec...), '\n')
		}
		Expect(os.WriteFile(filepath.Join(dir, "data", "test.jsonl"), lines, 0o644)).To(Succeed())
		var err error
		task, err = tasks.Parse([]byte(taskYAML), "echo.yaml")
		Expect(err).NotTo(HaveOccurred())
		exs, err = task.Examples(dir, 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(exs).To(HaveLen(6))
		cfg = eval.Config{Model: tiny, Tokenizer: byteTokenizer(dir), Quant: llama.FP32, Threads: 2, Batch: 4,
			Adapters: []eval.NamedDir{{Name: "mlp", Dir: filepath.Join(tiny, "adapters", "mlp-r8")}, {Name: "attn", Dir: filepath.Join(tiny, "adapters", "attn-rs4")}}}
		s, err = eval.Open(cfg)
		Expect(err).NotTo(HaveOccurred())
	})

	It("scores every system with every metric, intervals around the values", func() {
		systems := []results.System{{}, {Adapters: []string{"mlp"}}, cat}
		recs, err := s.Evaluate(task, exs, systems, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(recs).To(HaveLen(3))
		for i, r := range recs {
			Expect(r.System.Key()).To(Equal(systems[i].Key()))
			Expect(r.Task).To(Equal("echo"))
			Expect(r.TaskVersion).To(Equal("3"))
			Expect(r.Samples).To(Equal(6))
			Expect(r.Lengths).To(HaveLen(6))
			Expect(r.Metrics).To(HaveLen(7))
			for name, m := range r.Metrics {
				Expect(m.CILow).To(BeNumerically("<=", m.Value+1e-9), name)
				Expect(m.CIHigh).To(BeNumerically(">=", m.Value-1e-9), name)
				Expect(m.N).To(Equal(6), name)
			}
			Expect(r.Metrics["bleu"].HigherIsBetter).To(BeTrue())
			Expect(r.Metrics["loop_rate"].HigherIsBetter).To(BeFalse())
			Expect(r.Metrics["length_tokens"].Value).To(BeNumerically("<=", 6))
			total := 0.0
			for _, share := range r.Routing {
				total += share
			}
			Expect(total).To(BeNumerically("~", 1, 1e-9))
			Expect(r.Worst).To(HaveLen(5))
		}
		// An adapter alone is never closer to another adapter than to itself
		// (identical outputs of both adapters are a tie).
		Expect(recs[1].Routing).NotTo(HaveKey("attn"))
		Expect(recs[1].Routing["mlp"]).To(BeNumerically(">", 0))
		Expect(s.Merges).To(HaveKey(cat.Key()))
		Expect(s.Merges[cat.Key()].Rank).To(Equal(12))
	})

	It("gives the same tokens in a batch that mixes systems as one system at a time", func() {
		var mixed []eval.Request
		for _, ex := range exs {
			for _, sys := range []results.System{{}, {Adapters: []string{"attn"}}, cat} {
				mixed = append(mixed, eval.Request{System: sys, Prompt: ex.Prompt})
			}
		}
		got, err := s.Generate(mixed, 8, nil, nil)
		Expect(err).NotTo(HaveOccurred())
		fresh, err := eval.Open(cfg) // no cache
		Expect(err).NotTo(HaveOccurred())
		for i, r := range mixed {
			one, err := fresh.Generate([]eval.Request{r}, 8, nil, nil)
			Expect(err).NotTo(HaveOccurred())
			Expect(one[0].IDs).To(Equal(got[i].IDs), "request %d (%s)", i, r.System.Key())
		}
		// The adapters change the output: base and attn differ somewhere.
		differ := false
		for i := 0; i < len(mixed); i += 3 {
			differ = differ || fmt.Sprint(got[i].IDs) != fmt.Sprint(got[i+1].IDs)
		}
		Expect(differ).To(BeTrue())
	})

	It("refuses an unknown adapter in a combination, naming it", func() {
		_, err := s.Prepare(results.System{Adapters: []string{"mlp", "nope"}, Method: "cat", Weights: []float64{1, 1}})
		Expect(err).To(MatchError(ContainSubstring(`no adapter "nope"`)))
		_, err = s.Prepare(results.System{Adapters: []string{"mlp", "attn"}, Method: "linear", Weights: []float64{1, 1}})
		Expect(err).To(MatchError(ContainSubstring("linear")))
	})
})
