package datasets_test

import (
	"encoding/json"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/adapter"
	"loramix/engine/checkpoint"
	"loramix/engine/cpu"
	"loramix/engine/llama"
	"loramix/engine/merge"
)

// worldGolden is one file of datasets/world/goldens, written by
// reference/train_world.py from transformers + PEFT (float32, greedy).
type worldGolden struct {
	Config   string    `json:"config"`
	Kind     string    `json:"combination_type"` // none, single, cat or svd
	Adapters []string  `json:"adapters"`
	Weights  []float64 `json:"weights"`
	MaxNew   int       `json:"max_new_tokens"`
	Cases    []struct {
		Format    string  `json:"format"`
		PromptIDs []int32 `json:"prompt_ids"`
		OutputIDs []int32 `json:"output_ids"`
	} `json:"cases"`
}

var _ = Describe("the committed world on the CPU engine", Ordered, func() {
	var model *llama.Model

	BeforeAll(func() {
		dir := filepath.Join("world", "base")
		cfg, err := checkpoint.LoadConfig(dir)
		Expect(err).NotTo(HaveOccurred())
		w, err := checkpoint.OpenWeights(dir)
		Expect(err).NotTo(HaveOccurred())
		defer w.Close()
		model, err = llama.Load(cpu.New(cpu.Options{Threads: 2}), cfg, w, llama.Options{Quant: llama.FP32})
		Expect(err).NotTo(HaveOccurred())
		for _, name := range []string{"fren", "oasst", "clash"} {
			a, err := adapter.Load(filepath.Join("world", "adapters", name))
			Expect(err).NotTo(HaveOccurred())
			a.Name = name
			Expect(model.AddAdapter(a)).To(Succeed())
		}
	})

	files, _ := filepath.Glob(filepath.Join("world", "goldens", "*.json"))
	for _, path := range files {
		It("generates transformers' greedy tokens for "+filepath.Base(path), func() {
			var g worldGolden
			b, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			Expect(json.Unmarshal(b, &g)).To(Succeed())
			active := llama.Base
			switch g.Kind {
			case "single":
				active = g.Adapters[0]
			case "cat", "svd":
				var ins []*adapter.Adapter
				for _, n := range g.Adapters {
					ins = append(ins, model.Adapter(n))
				}
				res, err := merge.Merge(ins, merge.Options{Method: merge.Method(g.Kind), Weights: g.Weights, Name: g.Config})
				Expect(err).NotTo(HaveOccurred())
				if model.Adapter(g.Config) == nil {
					Expect(model.AddAdapter(res.Adapter)).To(Succeed())
				}
				active = g.Config
			}
			Expect(model.SetActive(active)).To(Succeed())
			var prompts [][]int32
			for _, c := range g.Cases {
				prompts = append(prompts, c.PromptIDs)
			}
			got, err := model.Generate(prompts, llama.GenOptions{MaxNewTokens: g.MaxNew})
			Expect(err).NotTo(HaveOccurred())
			for i, c := range g.Cases {
				Expect(got[i].IDs).To(Equal(c.OutputIDs), "%s, %s prompt %d", g.Config, c.Format, i)
			}
		})
	}
})
