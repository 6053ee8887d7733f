package llama_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/checkpoint"
	"loramix/engine/dtype"
	"loramix/engine/llama"
	"loramix/engine/nf4"
	"loramix/engine/safetensors"
)

func f32Bytes(v []float32) []byte {
	b, err := dtype.FromFloat32(v, dtype.F32)
	Expect(err).NotTo(HaveOccurred())
	return b
}

// writeBnb saves the tiny model as transformers saves a bitsandbytes 4-bit
// model (QuantState.as_dict(packed=True) beside each linear weight), with
// state edited by edit.
func writeBnb(model string, edit func(name string, st map[string]any)) string {
	src := filepath.Join(tinyDir, model)
	cfg, err := checkpoint.LoadConfig(src)
	Expect(err).NotTo(HaveOccurred())
	w, err := checkpoint.OpenWeights(src)
	Expect(err).NotTo(HaveOccurred())
	defer w.Close()
	var ts []safetensors.Tensor
	dyn := nf4.DynamicMap()
	for _, e := range cfg.Expected() {
		v, shape, err := w.Float32(e.Name)
		Expect(err).NotTo(HaveOccurred())
		if !strings.Contains(e.Name, "_proj") {
			ts = append(ts, safetensors.Tensor{Name: e.Name, DType: dtype.F32, Shape: shape, Data: f32Bytes(v)})
			continue
		}
		q := nf4.Quantize(v, shape[0], shape[1])
		st := map[string]any{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": shape,
			"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": float64(q.Offset)}
		if edit != nil {
			edit(e.Name, st)
		}
		js, err := json.Marshal(st)
		Expect(err).NotTo(HaveOccurred())
		ts = append(ts,
			safetensors.Tensor{Name: e.Name, DType: dtype.U8, Shape: []int{len(q.Packed), 1}, Data: q.Packed},
			safetensors.Tensor{Name: e.Name + ".absmax", DType: dtype.U8, Shape: []int{len(q.QAbsmax)}, Data: q.QAbsmax},
			safetensors.Tensor{Name: e.Name + ".nested_absmax", DType: dtype.F32, Shape: []int{len(q.Absmax2)}, Data: f32Bytes(q.Absmax2)},
			safetensors.Tensor{Name: e.Name + ".quant_map", DType: dtype.F32, Shape: []int{16}, Data: f32Bytes(nf4.Code[:])},
			safetensors.Tensor{Name: e.Name + ".nested_quant_map", DType: dtype.F32, Shape: []int{256}, Data: f32Bytes(dyn[:])},
			safetensors.Tensor{Name: e.Name + ".quant_state.bitsandbytes__nf4", DType: dtype.U8, Shape: []int{len(js)}, Data: js})
	}
	dir := GinkgoT().TempDir()
	Expect(safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"})).To(Succeed())
	b, err := os.ReadFile(filepath.Join(src, "config.json"))
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)).To(Succeed())
	return dir
}

func loadDir(dir string, q llama.Quant) (*llama.Model, error) {
	cfg, err := checkpoint.LoadConfig(dir)
	Expect(err).NotTo(HaveOccurred())
	w, err := checkpoint.OpenWeights(dir)
	Expect(err).NotTo(HaveOccurred())
	defer w.Close()
	return llama.Load(newCPU(), cfg, w, llama.Options{Quant: q})
}

var _ = Describe("checkpoints saved by bitsandbytes in 4-bit", func() {
	It("load as the same NF4 weights loramix quantizes to", func() {
		g := loadGolden("llama-gqa")
		defer g.Logits.Close()
		m, err := loadDir(writeBnb("llama-gqa", nil), llama.NF4)
		Expect(err).NotTo(HaveOccurred())
		got, err := m.Logits(g.Seqs)
		Expect(err).NotTo(HaveOccurred())
		for i := range g.Seqs {
			Expect(relErr(got[i], want(g, []string{"nf4.s0", "nf4.s1"}[i]))).To(BeNumerically("<", tol))
		}
		// and dequantized when asked for fp32
		m, err = loadDir(writeBnb("llama-gqa", nil), llama.FP32)
		Expect(err).NotTo(HaveOccurred())
		got, err = m.Logits(g.Seqs[:1])
		Expect(err).NotTo(HaveOccurred())
		Expect(relErr(got[0], want(g, "nf4.s0"))).To(BeNumerically("<", tol))
	})

	DescribeTable("refuse what they cannot read, naming the tensor",
		func(key string, value any, want string) {
			dir := writeBnb("llama-gqa", func(name string, st map[string]any) {
				if name == "model.layers.1.mlp.up_proj.weight" {
					if value == nil {
						delete(st, key)
					} else {
						st[key] = value
					}
				}
			})
			_, err := loadDir(dir, llama.NF4)
			Expect(err).To(MatchError(And(ContainSubstring("model.layers.1.mlp.up_proj.weight"), ContainSubstring(want))))
		},
		Entry("fp4", "quant_type", "fp4", `quant_type "fp4"`),
		Entry("blocks of 128", "blocksize", 128, "blocksize 128"),
		Entry("no double quantization", "nested_offset", nil, "double quantization"),
		Entry("a wrong shape", "shape", []int{64, 172}, "recorded shape"),
	)
})
