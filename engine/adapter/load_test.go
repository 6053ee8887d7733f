package adapter_test

import (
	"encoding/json"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/adapter"
	"loramix/engine/checkpoint"
)

const tiny = "../../testdata/tiny"

// golden is what PEFT 0.21 resolved per module (reference/make_tiny.py).
type golden struct {
	Modules map[string]struct {
		R       int     `json:"r"`
		Alpha   float64 `json:"alpha"`
		Scaling float64 `json:"scaling"`
		In      int     `json:"in"`
		Out     int     `json:"out"`
	} `json:"modules"`
}

func readGolden(model, name string) golden {
	var g golden
	b, err := os.ReadFile(filepath.Join(tiny, "golden", model+"."+name+".json"))
	Expect(err).NotTo(HaveOccurred())
	Expect(json.Unmarshal(b, &g)).To(Succeed())
	Expect(g.Modules).NotTo(BeEmpty())
	return g
}

var _ = Describe("Load", func() {
	DescribeTable("gives every module the rank, alpha, scaling and shapes PEFT gave it",
		func(model, name string) {
			a, err := adapter.Load(filepath.Join(tiny, model, "adapters", name))
			Expect(err).NotTo(HaveOccurred())
			Expect(a.Name).To(Equal(name))
			g := readGolden(model, name)
			Expect(a.ModuleNames()).To(HaveLen(len(g.Modules)))
			for mname, want := range g.Modules {
				Expect(a.Modules).To(HaveKey(mname))
				m := a.Modules[mname]
				Expect(m.Name).To(Equal(mname))
				Expect(m.R).To(Equal(want.R), mname)
				Expect(m.Alpha).To(Equal(want.Alpha), mname)
				Expect(m.Scaling()).To(BeNumerically("~", want.Scaling, 1e-12), mname)
				Expect(m.In).To(Equal(want.In), mname)
				Expect(m.Out).To(Equal(want.Out), mname)
				Expect(m.A).To(HaveLen(m.R * m.In))
				Expect(m.B).To(HaveLen(m.Out * m.R))
			}
			base, err := checkpoint.Open(filepath.Join(tiny, model))
			Expect(err).NotTo(HaveOccurred())
			defer base.Close()
			warns, err := adapter.Validate(a, base.Config, base.Weights)
			Expect(err).NotTo(HaveOccurred())
			// PEFT recorded loramix/tiny-<model>; the folder is testdata/tiny/<model>.
			Expect(warns).To(ConsistOf(ContainSubstring(`trained on "loramix/tiny-` + model + `"`)))
		},
		Entry(nil, "llama-mha", "mlp-r8"),
		Entry(nil, "llama-mha", "attn-rs4"),
		Entry(nil, "llama-gqa", "mlp-r8"),
		Entry(nil, "llama-gqa", "attn-rs4"),
		Entry("regex target_modules, rank_pattern and alpha_pattern", "llama-gqa", "patterns"),
		Entry("layers_to_transform", "llama-gqa", "layer1"),
		Entry(nil, "llama-tied", "mlp-r8"),
		Entry(nil, "llama-tied", "attn-rs4"),
	)

	It("reads adapter_model.bin to the same values as adapter_model.safetensors", func() {
		st, err := adapter.Load(filepath.Join(tiny, "llama-gqa", "adapters", "mlp-r8"))
		Expect(err).NotTo(HaveOccurred())
		bin, err := adapter.Load(filepath.Join(tiny, "llama-gqa", "adapters", "mlp-r8-bin"))
		Expect(err).NotTo(HaveOccurred())
		Expect(bin.ModuleNames()).To(Equal(st.ModuleNames()))
		for name, m := range st.Modules {
			Expect(bin.Modules[name].A).To(Equal(m.A))
			Expect(bin.Modules[name].B).To(Equal(m.B))
			Expect(bin.Modules[name].Scaling()).To(Equal(m.Scaling()))
		}
	})

	It("reads the config's fields and keeps the others", func() {
		a, err := adapter.Load(filepath.Join(tiny, "llama-gqa", "adapters", "patterns"))
		Expect(err).NotTo(HaveOccurred())
		c := a.Config
		Expect(c.PeftType).To(Equal("LORA"))
		Expect(c.R).To(Equal(8))
		Expect(c.LoraAlpha).To(Equal(16.0))
		Expect(c.TargetModules.Regex).To(Equal(`.*\.(q_proj|k_proj|down_proj)`))
		Expect(c.RankPattern).To(Equal(map[string]int{"down_proj": 4, "model.layers.1.self_attn.q_proj": 2}))
		Expect(c.AlphaPattern).To(Equal(map[string]float64{"k_proj": 3, "layers.0.mlp.down_proj": 5}))
		Expect(c.BaseModelNameOrPath).To(Equal("loramix/tiny-llama-gqa"))
		Expect(c.TaskType).To(Equal("CAUSAL_LM"))
		Expect(c.Extra).To(HaveKeyWithValue("peft_version", "0.21.0"))
		Expect(c.Extra).To(HaveKeyWithValue("init_lora_weights", true))

		l1, err := adapter.Load(filepath.Join(tiny, "llama-gqa", "adapters", "layer1"))
		Expect(err).NotTo(HaveOccurred())
		Expect(l1.Config.LayersToTransform).To(Equal([]int{1}))
		Expect(l1.Config.TargetModules.Names).To(ConsistOf("o_proj", "k_proj"))
	})
})
