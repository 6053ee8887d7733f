package checkpoint_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/checkpoint"
)

var _ = Describe("bad checkpoints", func() {
	var binSrc []byte

	BeforeEach(func() {
		var err error
		binSrc, err = os.ReadFile(filepath.Join(tiny, "formats", "gqa-bin", "pytorch_model.bin"))
		Expect(err).NotTo(HaveOccurred())
	})

	It("names the missing shard and a tensor it should hold", func() {
		dir := GinkgoT().TempDir()
		copyDir(filepath.Join(tiny, "formats", "gqa-sharded"), dir)
		Expect(os.Remove(filepath.Join(dir, "model-00002-of-00003.safetensors"))).To(Succeed())
		_, err := checkpoint.Open(dir)
		Expect(err).To(MatchError(And(
			ContainSubstring("model.safetensors.index.json"),
			ContainSubstring("model-00002-of-00003.safetensors"),
			ContainSubstring("is missing"),
			ContainSubstring(`"model.layers.0.input_layernorm.weight"`))))
	})

	It("names a tensor that the index puts in the wrong shard", func() {
		dir := GinkgoT().TempDir()
		copyDir(filepath.Join(tiny, "formats", "gqa-sharded"), dir)
		path := filepath.Join(dir, "model.safetensors.index.json")
		var idx map[string]any
		b, _ := os.ReadFile(path)
		Expect(json.Unmarshal(b, &idx)).To(Succeed())
		idx["weight_map"].(map[string]any)["model.norm.weight"] = "model-00001-of-00003.safetensors"
		b, _ = json.Marshal(idx)
		Expect(os.WriteFile(path, b, 0o644)).To(Succeed())
		_, err := checkpoint.Open(dir)
		Expect(err).To(MatchError(And(ContainSubstring(`"model.norm.weight"`), ContainSubstring("model-00001-of-00003.safetensors"))))
	})

	It("refuses an index that points outside the folder", func() {
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(`{"weight_map":{"a":"../x.safetensors"}}`), 0o644)).To(Succeed())
		_, err := checkpoint.OpenWeights(dir)
		Expect(err).To(MatchError(ContainSubstring(`tensor "a": shard name "../x.safetensors"`)))
	})

	It("names the tensor whose shape disagrees with config.json", func() {
		dir := GinkgoT().TempDir()
		copyDir(filepath.Join(tiny, "llama-gqa"), dir)
		cfg, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		cfg = bytes.Replace(cfg, []byte(`"num_key_value_heads": 2`), []byte(`"num_key_value_heads": 4`), 1)
		Expect(os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)).To(Succeed())
		_, err := checkpoint.Open(dir)
		Expect(err).To(MatchError(And(ContainSubstring(`"model.layers.0.self_attn.k_proj.weight"`), ContainSubstring("[32 64]"), ContainSubstring("[64 64]"))))
	})

	It("names the missing tensor and the folder without weights", func() {
		dir := GinkgoT().TempDir()
		copyDir(filepath.Join(tiny, "llama-tied"), dir)
		cfg, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		cfg = bytes.Replace(cfg, []byte(`"tie_word_embeddings": true`), []byte(`"tie_word_embeddings": false`), 1)
		Expect(os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)).To(Succeed())
		_, err := checkpoint.Open(dir)
		Expect(err).To(MatchError(And(ContainSubstring("model.safetensors"), ContainSubstring(`"lm_head.weight" is missing`))))

		empty := GinkgoT().TempDir()
		_, err = checkpoint.OpenWeights(empty)
		Expect(err).To(MatchError(And(ContainSubstring(empty), ContainSubstring("no weights"))))
	})

	DescribeTable("refuses malformed pickles, naming the file (and the tensor where there is one)",
		func(edit func([]byte) []byte, want ...string) {
			_, err := checkpoint.ParsePickle("bad.bin", edit(binSrc))
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("bad.bin"))
			for _, w := range want {
				Expect(err.Error()).To(ContainSubstring(w))
			}
		},
		Entry("not a zip", func(b []byte) []byte { return b[100:] }, "not a PyTorch zip"),
		Entry("truncated archive", func(b []byte) []byte { return b[:len(b)/2] }, "not a PyTorch zip"),
		Entry("truncated pickle", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte { return p[:len(p)/2] })
		}, "malformed pickle"),
		Entry("garbage pickle", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte { return []byte("\x80\x02\xff\xfe.") })
		}, "unknown opcode"),
		Entry("a length past the end", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte { return []byte("\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.") })
		}, "malformed pickle"),
		Entry("os.system instead of a tensor", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte {
				return bytes.Replace(p, []byte("ctorch._utils\n_rebuild_tensor_v2\n"), []byte("cos\nsystem\n"), 1)
			})
		}, "global os.system is not allowed"),
		Entry("builtins.eval", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte {
				return []byte("\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.")
			})
		}, "global builtins.eval is not allowed"),
		Entry("a double storage", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte {
				return bytes.Replace(p, []byte("ctorch\nFloatStorage\n"), []byte("ctorch\nDoubleStorage\n"), 1)
			})
		}, "torch.DoubleStorage is not supported"),
		Entry("a dict that is not of tensors", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte { return []byte("\x80\x02}X\x01\x00\x00\x00aK\x01s.") })
		}, `entry "a" is a int`),
		Entry("a missing storage record", func(b []byte) []byte {
			return rewriteZip(b, func(name string, d []byte) []byte {
				if name == "pytorch_model/data/0" {
					return nil
				}
				return d
			})
		}, `tensor "model.embed_tokens.weight"`, "data/0 is missing"),
		Entry("a storage shorter than the pickle says", func(b []byte) []byte {
			return rewriteZip(b, func(name string, d []byte) []byte {
				if name == "pytorch_model/data/0" {
					return d[:len(d)-4]
				}
				return d
			})
		}, `tensor "model.embed_tokens.weight"`, "24576 elements"),
		Entry("a view past its storage", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte {
				// storage offset 0 -> 1 for the embeddings, whose view fills the storage
				return bytes.Replace(p, []byte("QK\x00M\x80\x01K@"), []byte("QK\x01M\x80\x01K@"), 1)
			})
		}, `tensor "model.embed_tokens.weight"`, "reaches element 24576"),
		Entry("an expanded view larger than its storage (stride 0)", func(b []byte) []byte {
			return editPickle(b, func(p []byte) []byte {
				// size (384, 64), stride (64, 1) -> size (1000000, 64), stride (0, 1)
				from := []byte("M\x80\x01K@\x86q\x08K@K\x01\x86")
				Expect(bytes.Count(p, from)).To(Equal(1))
				return bytes.Replace(p, from, []byte("J\x40\x42\x0f\x00K@\x86q\x08K\x00K\x01\x86"), 1)
			})
		}, `tensor "model.embed_tokens.weight"`, "more than its 24576-element storage"),
	)
})
