package safetensors_test

import (
	"encoding/binary"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/dtype"
	"loramix/engine/safetensors"
)

// image builds a safetensors file from a header text and a data section.
func image(header string, data []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	return append(append(out, header...), data...)
}

var _ = Describe("safetensors", func() {
	It("round-trips tensors and metadata through Write and Open", func() {
		a, _ := dtype.FromFloat32([]float32{1, -2, 3.5, 0.25, 6, 7}, dtype.F32)
		b, _ := dtype.FromFloat32([]float32{0.5, -1.5}, dtype.F16)
		path := filepath.Join(GinkgoT().TempDir(), "t.safetensors")
		Expect(safetensors.Write(path, []safetensors.Tensor{
			{Name: "b", DType: dtype.F16, Shape: []int{2}, Data: b},
			{Name: "a", DType: dtype.F32, Shape: []int{2, 3}, Data: a},
		}, map[string]string{"format": "pt"})).To(Succeed())
		f, err := safetensors.Open(path)
		Expect(err).NotTo(HaveOccurred())
		defer f.Close()
		Expect(f.Metadata).To(Equal(map[string]string{"format": "pt"}))
		Expect(f.Tensors()).To(HaveLen(2))
		v, info, err := f.Float32("a")
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Shape).To(Equal([]int{2, 3}))
		Expect(v).To(Equal([]float32{1, -2, 3.5, 0.25, 6, 7}))
		v, info, err = f.Float32("b")
		Expect(err).NotTo(HaveOccurred())
		Expect(info.DType).To(Equal(dtype.F16))
		Expect(v).To(Equal([]float32{0.5, -1.5}))
		_, _, err = f.Float32("c")
		Expect(err).To(MatchError(ContainSubstring(`no tensor "c"`)))
		// The data section is 8-byte aligned, as the reference writer leaves it.
		raw, _ := os.ReadFile(path)
		Expect(binary.LittleEndian.Uint64(raw) % 8).To(BeZero())
	})

	It("reads a file that PEFT wrote", func() {
		f, err := safetensors.Open("../../testdata/tiny/llama-gqa/adapters/layer1/adapter_model.safetensors")
		Expect(err).NotTo(HaveOccurred())
		defer f.Close()
		info, ok := f.Info("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")
		Expect(ok).To(BeTrue())
		Expect(info.DType).To(Equal(dtype.F32))
		Expect(info.Shape).To(Equal([]int{32, 2}))
	})

	It("refuses an encode whose bytes disagree with the shape, and leaves no file", func() {
		dir := GinkgoT().TempDir()
		err := safetensors.Write(filepath.Join(dir, "x.safetensors"), []safetensors.Tensor{{Name: "w", DType: dtype.F32, Shape: []int{3}, Data: make([]byte, 8)}}, nil)
		Expect(err).To(MatchError(ContainSubstring(`tensor "w"`)))
		ents, _ := os.ReadDir(dir)
		Expect(ents).To(BeEmpty())
	})

	DescribeTable("refuses corrupt files, naming the file and the tensor",
		func(buf []byte, want ...string) {
			path := filepath.Join(GinkgoT().TempDir(), "bad.safetensors")
			Expect(os.WriteFile(path, buf, 0o644)).To(Succeed())
			_, err := safetensors.Open(path)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(path))
			for _, w := range want {
				Expect(err.Error()).To(ContainSubstring(w))
			}
			_, err = safetensors.Parse("mem", buf) // the in-memory path agrees
			Expect(err).To(HaveOccurred())
		},
		Entry("shorter than a header length", []byte{1, 2, 3}, "too short"),
		Entry("header length past the end", image(`{}`, nil)[:9], "header length 2 runs past the end"),
		Entry("a huge header length", append([]byte{0, 0, 0, 0, 0, 0, 0, 0x80}, make([]byte, 16)...), "runs past the end"),
		Entry("header not JSON", image(`{"w":`, nil), "not valid JSON"),
		Entry("truncated data", image(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 6)), `tensor "w"`, "out of range"),
		Entry("offsets out of range", image(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 8)), `tensor "w"`, "out of range"),
		Entry("negative offsets", image(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, make([]byte, 8)), `tensor "w"`, "out of range"),
		Entry("overlapping tensors", image(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
			`tensor "b"`, `overlaps tensor "a"`),
		Entry("dtype and shape that need other bytes", image(`{"w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)),
			`tensor "w"`, "need 6 bytes, offsets give 8"),
		Entry("an unknown dtype", image(`{"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}`, make([]byte, 8)), `tensor "w"`, "unsupported dtype"),
		Entry("three offsets", image(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 8)), `tensor "w"`, "2 entries"),
		Entry("a negative dimension", image(`{"w":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}}`, make([]byte, 16)), `tensor "w"`, "bad shape"),
		Entry("an overflowing shape", image(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}`, make([]byte, 16)), `tensor "w"`, "bad shape"),
		Entry("metadata that is not strings", image(`{"__metadata__":{"a":1}}`, nil), "__metadata__"),
		Entry("an entry that is not an object", image(`{"w":[1,2]}`, nil), `tensor "w"`),
	)
})
