package adapter_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/adapter"
	"loramix/engine/checkpoint"
	"loramix/engine/dtype"
	"loramix/engine/safetensors"
)

// fixture copies a tiny adapter into a temporary folder and returns it.
func fixture(model, name string) string {
	src := filepath.Join(tiny, model, "adapters", name)
	dst := filepath.Join(GinkgoT().TempDir(), name)
	Expect(os.MkdirAll(dst, 0o755)).To(Succeed())
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dst, f), b, 0o644)).To(Succeed())
	}
	return dst
}

// editConfig changes fields of dir/adapter_config.json.
func editConfig(dir string, set map[string]any) {
	path := filepath.Join(dir, "adapter_config.json")
	b, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	var m map[string]any
	Expect(json.Unmarshal(b, &m)).To(Succeed())
	for k, v := range set {
		m[k] = v
	}
	b, err = json.Marshal(m)
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(path, b, 0o644)).To(Succeed())
}

// editTensors rewrites dir/adapter_model.safetensors through edit, which
// gets every tensor (as float32) and returns the new set.
func editTensors(dir string, edit func(map[string]safetensors.Tensor) map[string]safetensors.Tensor) {
	path := filepath.Join(dir, "adapter_model.safetensors")
	w, err := checkpoint.OpenFile(path)
	Expect(err).NotTo(HaveOccurred())
	ts := map[string]safetensors.Tensor{}
	for _, n := range w.Names() {
		v, shape, err := w.Float32(n)
		Expect(err).NotTo(HaveOccurred())
		raw, err := dtype.FromFloat32(v, dtype.F32)
		Expect(err).NotTo(HaveOccurred())
		ts[n] = safetensors.Tensor{Name: n, DType: dtype.F32, Shape: shape, Data: raw}
	}
	Expect(w.Close()).To(Succeed())
	var out []safetensors.Tensor
	for n, t := range edit(ts) {
		t.Name = n
		out = append(out, t)
	}
	Expect(safetensors.Write(path, out, nil)).To(Succeed())
}

func f32(shape []int, v float32) safetensors.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = v
	}
	raw, _ := dtype.FromFloat32(vals, dtype.F32)
	return safetensors.Tensor{DType: dtype.F32, Shape: shape, Data: raw}
}

const downA = "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"

var _ = Describe("bad adapters", func() {
	DescribeTable("Load refuses them, naming the file and the field or tensor",
		func(prepare func(dir string), want ...string) {
			dir := fixture("llama-gqa", "mlp-r8")
			prepare(dir)
			_, err := adapter.Load(dir)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(dir))
			for _, w := range want {
				Expect(err.Error()).To(ContainSubstring(w))
			}
		},
		Entry("a config that lies about r", func(d string) { editConfig(d, map[string]any{"r": 4}) },
			downA, "rank 8", "r=4"),
		Entry("a rank_pattern that lies", func(d string) {
			editConfig(d, map[string]any{"rank_pattern": map[string]any{"up_proj": 2}})
		}, "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight", "rank 8", "r=2"),
		Entry("DoRA in the config", func(d string) { editConfig(d, map[string]any{"use_dora": true}) }, "adapter_config.json", "use_dora"),
		Entry("lora_bias in the config", func(d string) { editConfig(d, map[string]any{"lora_bias": true}) }, "adapter_config.json", "lora_bias"),
		Entry("trained biases", func(d string) { editConfig(d, map[string]any{"bias": "all"}) }, "adapter_config.json", `bias "all"`),
		Entry("modules_to_save", func(d string) { editConfig(d, map[string]any{"modules_to_save": []string{"lm_head"}}) }, "modules_to_save"),
		Entry("another PEFT method", func(d string) { editConfig(d, map[string]any{"peft_type": "IA3"}) }, `peft_type "IA3"`),
		Entry("no peft_type", func(d string) { editConfig(d, map[string]any{"peft_type": nil}) }, `peft_type ""`),
		Entry("a string r", func(d string) { editConfig(d, map[string]any{"r": "8"}) }, `field "r"`),
		Entry("a regex Go cannot run", func(d string) { editConfig(d, map[string]any{"target_modules": `(?<=x)proj`}) }, "target_modules"),
		Entry("trainable tokens", func(d string) {
			editConfig(d, map[string]any{"trainable_token_indices": []int{1, 2}})
		}, "trainable_token_indices"),
		Entry("not JSON", func(d string) {
			Expect(os.WriteFile(filepath.Join(d, "adapter_config.json"), []byte("{r: 8"), 0o644)).To(Succeed())
		}, "adapter_config.json", "not a valid adapter config"),
		Entry("a DoRA magnitude tensor", func(d string) {
			editTensors(d, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
				ts["base_model.model.model.layers.0.mlp.down_proj.lora_magnitude_vector"] = f32([]int{64}, 1)
				return ts
			})
		}, "lora_magnitude_vector", "DoRA"),
		Entry("LoRA on the embeddings", func(d string) {
			editTensors(d, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
				ts["base_model.model.model.embed_tokens.lora_embedding_A"] = f32([]int{8, 384}, 0)
				return ts
			})
		}, "lora_embedding_A", "embeddings"),
		Entry("a bias on B", func(d string) {
			editTensors(d, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
				ts["base_model.model.model.layers.0.mlp.down_proj.lora_B.bias"] = f32([]int{64}, 0)
				return ts
			})
		}, "down_proj.lora_B.bias", "lora_bias"),
		Entry("a NaN", func(d string) {
			editTensors(d, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
				ts["base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"] = f32([]int{172, 8}, float32(math.NaN()))
				return ts
			})
		}, "layers.1.mlp.up_proj.lora_B.weight", "NaN"),
		Entry("an Inf", func(d string) {
			editTensors(d, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
				ts[downA] = f32([]int{8, 172}, float32(math.Inf(-1)))
				return ts
			})
		}, downA, "-Inf"),
		Entry("A without B", func(d string) {
			editTensors(d, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
				delete(ts, "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")
				return ts
			})
		}, downA, "no partner"),
		Entry("A and B of different ranks", func(d string) {
			editTensors(d, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
				ts["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"] = f32([]int{64, 4}, 0)
				return ts
			})
		}, downA, "[8 172]", "[64 4]"),
		Entry("two adapter names in one file", func(d string) {
			editTensors(d, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
				t := ts[downA]
				delete(ts, downA)
				ts[strings.Replace(downA, "lora_A.weight", "lora_A.other.weight", 1)] = t
				return ts
			})
		}, `"other"`, "one adapter per file"),
		Entry("no weights", func(d string) {
			Expect(os.Remove(filepath.Join(d, "adapter_model.safetensors"))).To(Succeed())
		}, "no adapter_model.safetensors or adapter_model.bin"),
		Entry("a truncated weight file", func(d string) {
			p := filepath.Join(d, "adapter_model.safetensors")
			b, _ := os.ReadFile(p)
			Expect(os.WriteFile(p, b[:len(b)-100], 0o644)).To(Succeed())
		}, "adapter_model.safetensors", "out of range"),
	)

	It("reads keys that carry PEFT's adapter name", func() {
		dir := fixture("llama-gqa", "attn-rs4")
		plain, err := adapter.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		editTensors(dir, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
			out := map[string]safetensors.Tensor{}
			for n, t := range ts {
				n = strings.Replace(n, ".lora_A.weight", ".lora_A.default.weight", 1)
				out[strings.Replace(n, ".lora_B.weight", ".lora_B.default.weight", 1)] = t
			}
			return out
		})
		named, err := adapter.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(named.ModuleNames()).To(Equal(plain.ModuleNames()))
		for n, m := range plain.Modules {
			Expect(named.Modules[n].A).To(Equal(m.A))
			Expect(named.Modules[n].B).To(Equal(m.B))
			Expect(named.Modules[n].RSLoRA).To(BeTrue())
			Expect(named.Modules[n].Scaling()).To(Equal(8 / math.Sqrt(4)))
		}
	})

	It("loads an adapter by hub id from the cache", func() {
		cache := GinkgoT().TempDir()
		GinkgoT().Setenv("HF_HUB_CACHE", cache)
		snap := filepath.Join(cache, "models--someone--tiny-mlp", "snapshots", "c0ffee")
		Expect(os.MkdirAll(filepath.Dir(snap), 0o755)).To(Succeed())
		Expect(os.Rename(fixture("llama-gqa", "mlp-r8"), snap)).To(Succeed())
		Expect(os.MkdirAll(filepath.Join(cache, "models--someone--tiny-mlp", "refs"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(cache, "models--someone--tiny-mlp", "refs", "main"), []byte("c0ffee"), 0o644)).To(Succeed())
		a, err := adapter.Load("someone/tiny-mlp")
		Expect(err).NotTo(HaveOccurred())
		Expect(a.Dir).To(Equal(snap))
		Expect(a.Modules).To(HaveLen(6))
	})
})

var _ = Describe("Validate", func() {
	var gqa, mha *checkpoint.Model

	BeforeEach(func() {
		var err error
		gqa, err = checkpoint.Open(filepath.Join(tiny, "llama-gqa"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(gqa.Close)
		mha, err = checkpoint.Open(filepath.Join(tiny, "llama-mha"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(mha.Close)
	})

	It("names the module and both shapes when the base differs", func() {
		a, err := adapter.Load(filepath.Join(tiny, "llama-gqa", "adapters", "attn-rs4"))
		Expect(err).NotTo(HaveOccurred())
		_, err = adapter.Validate(a, mha.Config, mha.Weights)
		// gqa's v_proj is (32, 64); mha's is (64, 64). q_proj and gate_proj agree.
		Expect(err).To(MatchError(And(ContainSubstring("module model.layers.0.self_attn.v_proj"), ContainSubstring("[32 64]"), ContainSubstring("[64 64]"))))
		// Without weights the config's shapes are used.
		_, err = adapter.Validate(a, mha.Config, nil)
		Expect(err).To(MatchError(ContainSubstring("model.layers.0.self_attn.v_proj")))
	})

	It("refuses tensors for a module the config does not target, and targets without tensors", func() {
		dir := fixture("llama-gqa", "mlp-r8")
		editConfig(dir, map[string]any{"target_modules": []string{"gate_proj", "down_proj"}})
		a, err := adapter.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		_, err = adapter.Validate(a, gqa.Config, gqa.Weights)
		Expect(err).To(MatchError(ContainSubstring("module model.layers.0.mlp.up_proj has tensors, but")))

		editConfig(dir, map[string]any{"target_modules": []string{"gate_proj", "down_proj", "up_proj", "o_proj"}})
		a, err = adapter.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		_, err = adapter.Validate(a, gqa.Config, gqa.Weights)
		Expect(err).To(MatchError(ContainSubstring("targets model.layers.0.self_attn.o_proj, but the weights have no lora_A/lora_B")))
	})

	It("refuses LoRA on lm_head and on layers the base lacks", func() {
		dir := fixture("llama-gqa", "mlp-r8")
		editConfig(dir, map[string]any{"target_modules": []string{"gate_proj", "down_proj", "up_proj", "lm_head"}})
		editTensors(dir, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
			ts["base_model.model.lm_head.lora_A.weight"] = f32([]int{8, 64}, 0.1)
			ts["base_model.model.lm_head.lora_B.weight"] = f32([]int{384, 8}, 0.1)
			return ts
		})
		a, err := adapter.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		_, err = adapter.Validate(a, gqa.Config, gqa.Weights)
		Expect(err).To(MatchError(ContainSubstring("module lm_head: LoRA on lm_head is not supported")))

		dir = fixture("llama-gqa", "mlp-r8")
		editTensors(dir, func(ts map[string]safetensors.Tensor) map[string]safetensors.Tensor {
			ts["base_model.model.model.layers.5.mlp.up_proj.lora_A.weight"] = f32([]int{8, 64}, 0.1)
			ts["base_model.model.model.layers.5.mlp.up_proj.lora_B.weight"] = f32([]int{172, 8}, 0.1)
			return ts
		})
		a, err = adapter.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		_, err = adapter.Validate(a, gqa.Config, gqa.Weights)
		Expect(err).To(MatchError(ContainSubstring("module model.layers.5.mlp.up_proj is not a linear layer of the base (2 layers)")))
	})

	It("warns about fan_in_fan_out and a foreign base, and accepts a matching base name", func() {
		dir := fixture("llama-gqa", "mlp-r8")
		editConfig(dir, map[string]any{"fan_in_fan_out": true, "base_model_name_or_path": "meta-llama/Llama-2-7b-hf"})
		a, err := adapter.Load(dir)
		Expect(err).NotTo(HaveOccurred())
		warns, err := adapter.Validate(a, gqa.Config, gqa.Weights)
		Expect(err).NotTo(HaveOccurred())
		Expect(warns).To(ConsistOf(ContainSubstring("fan_in_fan_out"), ContainSubstring(`trained on "meta-llama/Llama-2-7b-hf", applied to ../../testdata/tiny/llama-gqa`)))

		a.Config.FanInFanOut = false
		a.Config.BaseModelNameOrPath = "../../testdata/tiny/llama-gqa"
		Expect(adapter.Validate(a, gqa.Config, gqa.Weights)).To(BeEmpty())
		a.Config.BaseModelNameOrPath = "someone/llama-gqa"
		Expect(adapter.Validate(a, gqa.Config, gqa.Weights)).To(BeEmpty())
	})
})
