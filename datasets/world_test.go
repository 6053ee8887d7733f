package datasets_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/dtype"
	"loramix/engine/safetensors"
)

// The committed reference world (datasets/world), checked against the shape
// that reference/train_world.py trained.
var _ = Describe("the committed world", func() {
	const world = "world"
	hidden, inter, layers, vocab := 160, 512, 6, 32000

	readJSON := func(path string, v any) {
		b, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(json.Unmarshal(b, v)).To(Succeed(), path)
	}

	It("stays under 16 MB (base F16 plus all adapters)", func() {
		total := int64(0)
		for _, f := range []string{"base/model.safetensors", "adapters/fren/adapter_model.safetensors",
			"adapters/oasst/adapter_model.safetensors", "adapters/clash/adapter_model.safetensors"} {
			fi, err := os.Stat(filepath.Join(world, f))
			Expect(err).NotTo(HaveOccurred())
			total += fi.Size()
		}
		Expect(total).To(BeNumerically("<", 16_000_000))
	})

	It("has a tied F16 Llama base of the trained shape", func() {
		var cfg struct {
			Hidden  int  `json:"hidden_size"`
			Inter   int  `json:"intermediate_size"`
			Layers  int  `json:"num_hidden_layers"`
			Vocab   int  `json:"vocab_size"`
			Tied    bool `json:"tie_word_embeddings"`
			Heads   int  `json:"num_attention_heads"`
			KVHeads int  `json:"num_key_value_heads"`
		}
		readJSON(filepath.Join(world, "base/config.json"), &cfg)
		Expect([]int{cfg.Hidden, cfg.Inter, cfg.Layers, cfg.Vocab, cfg.Heads, cfg.KVHeads}).To(Equal([]int{hidden, inter, layers, vocab, 5, 5}))
		Expect(cfg.Tied).To(BeTrue())
		f, err := safetensors.Open(filepath.Join(world, "base/model.safetensors"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(f.Close)
		Expect(f.Tensors()).To(HaveLen(2 + 9*layers))
		for _, t := range f.Tensors() {
			Expect(t.DType).To(Equal(dtype.F16), t.Name)
		}
		emb, ok := f.Info("model.embed_tokens.weight")
		Expect(ok).To(BeTrue())
		Expect(emb.Shape).To(Equal([]int{vocab, hidden}))
		_, ok = f.Info("lm_head.weight")
		Expect(ok).To(BeFalse(), "tied embeddings store no lm_head")
	})

	DescribeTable("has F16 PEFT adapters with the reference config",
		func(name string) {
			var cfg struct {
				R       int      `json:"r"`
				Alpha   float64  `json:"lora_alpha"`
				Dropout float64  `json:"lora_dropout"`
				Targets []string `json:"target_modules"`
			}
			readJSON(filepath.Join(world, "adapters", name, "adapter_config.json"), &cfg)
			Expect(cfg.R).To(Equal(16))
			Expect(cfg.Alpha).To(Equal(16.0))
			Expect(cfg.Dropout).To(Equal(0.05))
			Expect(cfg.Targets).To(ConsistOf("gate_proj", "up_proj", "down_proj"))
			f, err := safetensors.Open(filepath.Join(world, "adapters", name, "adapter_model.safetensors"))
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(f.Close)
			Expect(f.Tensors()).To(HaveLen(2 * 3 * layers))
			in := map[string]int{"gate_proj": hidden, "up_proj": hidden, "down_proj": inter}
			out := map[string]int{"gate_proj": inter, "up_proj": inter, "down_proj": hidden}
			for l := 0; l < layers; l++ {
				for m := range in {
					pre := fmt.Sprintf("base_model.model.model.layers.%d.mlp.%s.", l, m)
					a, okA := f.Info(pre + "lora_A.weight")
					b, okB := f.Info(pre + "lora_B.weight")
					Expect(okA && okB).To(BeTrue(), pre)
					Expect(a.DType).To(Equal(dtype.F16))
					Expect(a.Shape).To(Equal([]int{16, in[m]}), pre)
					Expect(b.Shape).To(Equal([]int{out[m], 16}), pre)
				}
			}
		},
		Entry(nil, "fren"), Entry(nil, "oasst"), Entry(nil, "clash"),
	)

	It("has greedy goldens for every adapter and combination", func() {
		files, err := filepath.Glob(filepath.Join(world, "goldens", "*.json"))
		Expect(err).NotTo(HaveOccurred())
		Expect(len(files)).To(BeNumerically(">=", 11))
		for _, path := range files {
			var g struct {
				Config   string    `json:"config"`
				Kind     string    `json:"combination_type"`
				Adapters []string  `json:"adapters"`
				Weights  []float64 `json:"weights"`
				MaxNew   int       `json:"max_new_tokens"`
				Cases    []struct {
					Prompt    string `json:"prompt"`
					PromptIDs []int  `json:"prompt_ids"`
					OutputIDs []int  `json:"output_ids"`
				} `json:"cases"`
			}
			readJSON(path, &g)
			Expect(g.Config + ".json").To(Equal(filepath.Base(path)))
			Expect(g.Adapters).To(HaveLen(len(g.Weights)), path)
			Expect(g.Cases).To(HaveLen(6), path)
			for _, c := range g.Cases {
				Expect(c.PromptIDs[0]).To(Equal(1), "prompts start with <s>")
				Expect(len(c.OutputIDs)).To(BeNumerically("<=", g.MaxNew))
				for _, id := range append(c.PromptIDs, c.OutputIDs...) {
					Expect(id).To(BeNumerically("<", vocab))
				}
			}
		}
	})
})
