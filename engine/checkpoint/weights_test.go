package checkpoint_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/checkpoint"
	"loramix/engine/dtype"
)

// all reads every tensor of a checkpoint as float32.
func all(w checkpoint.Weights) map[string][]float32 {
	out := map[string][]float32{}
	for _, n := range w.Names() {
		v, shape, err := w.Float32(n)
		Expect(err).NotTo(HaveOccurred())
		info, ok := w.Info(n)
		Expect(ok).To(BeTrue())
		Expect(shape).To(Equal(info.Shape))
		Expect(v).To(HaveLen(info.NumElements()))
		out[n] = v
	}
	return out
}

var _ = Describe("Weights", Ordered, func() {
	var ref map[string][]float32 // llama-gqa's model.safetensors

	BeforeAll(func() {
		m, err := checkpoint.Open(filepath.Join(tiny, "llama-gqa"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(m.Close)
		ref = all(m.Weights)
		Expect(ref).To(HaveLen(2 + 1 + 9*2))
		Expect(m.ParamCount()).To(Equal(int64(140096))) // the index's total_parameters
	})

	DescribeTable("gives the same float32 tensors in every format of llama-gqa",
		func(format string, round func(float32) float32) {
			m, err := checkpoint.Open(filepath.Join(tiny, "formats", format))
			Expect(err).NotTo(HaveOccurred())
			defer m.Close()
			got := all(m.Weights)
			Expect(got).To(HaveLen(len(ref)))
			for name, want := range ref {
				Expect(got).To(HaveKey(name))
				for i := range want {
					if round(want[i]) != got[name][i] {
						Fail(name + ": element differs")
					}
				}
			}
		},
		Entry("sharded safetensors", "gqa-sharded", func(x float32) float32 { return x }),
		Entry("pytorch_model.bin", "gqa-bin", func(x float32) float32 { return x }),
		// torch's .to(float16/bfloat16) rounds to nearest even, as dtype does.
		Entry("float16", "gqa-f16", func(x float32) float32 { return dtype.F16ToF32(dtype.F32ToF16(x)) }),
		Entry("bfloat16", "gqa-bf16", func(x float32) float32 {
			b, _ := dtype.FromFloat32([]float32{x}, dtype.BF16)
			out := make([]float32, 1)
			Expect(dtype.ToFloat32(out, b, dtype.BF16)).To(Succeed())
			return out[0]
		}),
	)

	It("reads pytorch_model.bin shards through pytorch_model.bin.index.json", func() {
		dir := GinkgoT().TempDir()
		b, err := os.ReadFile(filepath.Join(tiny, "formats", "gqa-bin", "pytorch_model.bin"))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dir, "pytorch_model-00001-of-00001.bin"), b, 0o644)).To(Succeed())
		wm := map[string]string{}
		for name := range ref {
			wm[name] = "pytorch_model-00001-of-00001.bin"
		}
		idx, _ := json.Marshal(map[string]any{"weight_map": wm})
		Expect(os.WriteFile(filepath.Join(dir, "pytorch_model.bin.index.json"), idx, 0o644)).To(Succeed())
		w, err := checkpoint.OpenWeights(dir)
		Expect(err).NotTo(HaveOccurred())
		defer w.Close()
		Expect(all(w)).To(Equal(ref))
		_, _, err = w.(checkpoint.RawWeights).Raw("model.norm.weight")
		Expect(err).To(MatchError(ContainSubstring("not stored raw")))
	})

	It("reports the stored dtypes", func() {
		for format, want := range map[string]dtype.DType{"gqa-f16": dtype.F16, "gqa-bf16": dtype.BF16, "gqa-bin": dtype.F32} {
			m, err := checkpoint.Open(filepath.Join(tiny, "formats", format))
			Expect(err).NotTo(HaveOccurred())
			info, ok := m.Weights.Info("model.layers.0.mlp.down_proj.weight")
			Expect(ok).To(BeTrue())
			Expect(info.DType).To(Equal(want))
			Expect(info.Shape).To(Equal([]int{64, 172}))
			m.Close()
		}
	})

	It("gives raw bytes of memory-mapped safetensors without copying", func() {
		w, err := checkpoint.OpenWeights(filepath.Join(tiny, "formats", "gqa-sharded"))
		Expect(err).NotTo(HaveOccurred())
		defer w.Close()
		raw, info, err := w.(checkpoint.RawWeights).Raw("model.norm.weight")
		Expect(err).NotTo(HaveOccurred())
		Expect(info.File).To(HaveSuffix("model-00003-of-00003.safetensors"))
		Expect(raw).To(HaveLen(64 * 4))
		v := make([]float32, 64)
		Expect(dtype.ToFloat32(v, raw, dtype.F32)).To(Succeed())
		Expect(v).To(Equal(ref["model.norm.weight"]))
	})

	It("opens the tied checkpoint without lm_head", func() {
		m, err := checkpoint.Open(filepath.Join(tiny, "llama-tied"))
		Expect(err).NotTo(HaveOccurred())
		defer m.Close()
		_, ok := m.Weights.Info("lm_head.weight")
		Expect(ok).To(BeFalse())
		Expect(m.Weights.Names()).To(HaveLen(2 + 9*2))
		Expect(m.ParamCount()).To(Equal(int64(256*64 + 64 + 2*(4*64*64+3*64*172+2*64))))
	})

	It("follows strides (a transposed view) and reads an OrderedDict with _metadata", func() {
		src, err := os.ReadFile(filepath.Join(tiny, "formats", "gqa-bin", "pytorch_model.bin"))
		Expect(err).NotTo(HaveOccurred())
		// Embeddings: storage offset 0, size (384, 64), stride (64, 1) -> size (64, 384), stride (1, 64).
		from := []byte("K\x00M\x80\x01K@\x86q\x08K@K\x01\x86")
		to := []byte("K\x00K@M\x80\x01\x86q\x08K\x01K@\x86")
		buf := editPickle(src, func(p []byte) []byte {
			Expect(bytes.Count(p, from)).To(Equal(1))
			p = bytes.Replace(p, from, to, 1)
			// A state dict as torch's state_dict() returns it: an OrderedDict with _metadata.
			Expect(p[:3]).To(Equal([]byte("\x80\x02}")))
			Expect(p[len(p)-1]).To(Equal(byte('.')))
			head := []byte("\x80\x02ccollections\nOrderedDict\n)R")
			tail := []byte("}X\x09\x00\x00\x00_metadata}s" + "b.")
			return append(append(head, p[3:len(p)-1]...), tail...)
		})
		w, err := checkpoint.ParsePickle("edited.bin", buf)
		Expect(err).NotTo(HaveOccurred())
		v, shape, err := w.Float32("model.embed_tokens.weight")
		Expect(err).NotTo(HaveOccurred())
		Expect(shape).To(Equal([]int{64, 384}))
		want := ref["model.embed_tokens.weight"] // (384, 64)
		for i := 0; i < 64; i++ {
			for j := 0; j < 384; j++ {
				if v[i*384+j] != want[j*64+i] {
					Fail("transposed view differs")
				}
			}
		}
		n, _, err := w.Float32("model.norm.weight")
		Expect(err).NotTo(HaveOccurred())
		Expect(n).To(Equal(ref["model.norm.weight"]))
	})
})
