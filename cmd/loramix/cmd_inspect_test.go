package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

const tinyDir = "../../testdata/tiny"

func inspect(args ...string) (string, error) {
	var out bytes.Buffer
	err := runInspect(args, &out)
	return out.String(), err
}

var _ = Describe("loramix inspect", func() {
	It("describes a model", func() {
		out, err := inspect(filepath.Join(tinyDir, "llama-gqa"))
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("LlamaForCausalLM, 2 layers, hidden 64, intermediate 172"))
		Expect(out).To(ContainSubstring("4 heads, 2 kv heads (grouped-query, 2 query heads per kv head), head dim 16"))
		Expect(out).To(ContainSubstring("rope theta 10000, linear scaling 2, max 128"))
		Expect(out).To(ContainSubstring("140,096 parameters")) // transformers' total_parameters in the sharded index
		Expect(out).To(MatchRegexp(`model\.layers\.N\.self_attn\.k_proj\.weight \(x2\)\s+\[32 64\]\s+F32`))
	})

	It("reports the dtypes and shards of other formats", func() {
		out, err := inspect(filepath.Join(tinyDir, "formats", "gqa-bf16"))
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("BF16 x21"))
		out, err = inspect("--json", filepath.Join(tinyDir, "formats", "gqa-sharded"))
		Expect(err).NotTo(HaveOccurred())
		var rep inspectReport
		Expect(json.Unmarshal([]byte(out), &rep)).To(Succeed())
		Expect(rep.Model.Weights).To(HavePrefix("3 shards"))
		Expect(rep.Model.Parameters).To(Equal(int64(140096)))
		Expect(rep.Model.Bytes).To(Equal(int64(560384))) // the index's total_size
		Expect(rep.Model.KVHeads).To(Equal(2))
	})

	It("describes an adapter with the scaling PEFT gives each module", func() {
		out, err := inspect(filepath.Join(tinyDir, "llama-tied", "adapters", "attn-rs4"), "--json")
		Expect(err).NotTo(HaveOccurred())
		var rep inspectReport
		Expect(json.Unmarshal([]byte(out), &rep)).To(Succeed())
		a := rep.Adapter
		Expect(a.R).To(Equal(4))
		Expect(a.RSLoRA).To(BeTrue())
		Expect(a.Targets).To(Equal([]string{"gate_proj", "q_proj", "v_proj"}))
		Expect(a.Modules).To(HaveLen(6))
		for _, m := range a.Modules {
			Expect(m.Scaling).To(Equal(4.0)) // 8 / sqrt(4)
		}
		Expect(rep.Model).To(BeNil())
		Expect(rep.Fit).To(BeNil())
	})

	It("says whether an adapter fits a model, in either order", func() {
		out, err := inspect(filepath.Join(tinyDir, "llama-gqa", "adapters", "patterns"), filepath.Join(tinyDir, "llama-gqa"))
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("fits: yes"))
		Expect(out).To(MatchRegexp(`model\.layers\.1\.self_attn\.q_proj\s+2\s+16\s+8\s+64\s+64`))

		out, err = inspect(filepath.Join(tinyDir, "llama-mha"), filepath.Join(tinyDir, "llama-gqa", "adapters", "attn-rs4"))
		Expect(err).To(Equal(errNoFit))
		Expect(out).To(ContainSubstring("fits: no"))
		Expect(out).To(ContainSubstring("model.layers.0.self_attn.v_proj"))
		Expect(out).To(ContainSubstring("[32 64]"))
		Expect(out).To(ContainSubstring("[64 64]"))
	})

	It("accepts a hub id from the cache", func() {
		cache := GinkgoT().TempDir()
		GinkgoT().Setenv("HF_HUB_CACHE", cache)
		repo := filepath.Join(cache, "models--loramix--tiny-llama-mha")
		snap := filepath.Join(repo, "snapshots", "abc")
		Expect(os.MkdirAll(snap, 0o755)).To(Succeed())
		for _, f := range []string{"config.json", "generation_config.json", "model.safetensors"} {
			Expect(os.Symlink(mustAbs(filepath.Join(tinyDir, "llama-mha", f)), filepath.Join(snap, f))).To(Succeed())
		}
		Expect(os.MkdirAll(filepath.Join(repo, "refs"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(repo, "refs", "main"), []byte("abc"), 0o644)).To(Succeed())
		out, err := inspect("loramix/tiny-llama-mha")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("model loramix/tiny-llama-mha"))
		Expect(out).To(ContainSubstring(snap))
		Expect(out).To(ContainSubstring("4 heads, 4 kv heads (multi-head)"))
	})

	DescribeTable("refuses what it cannot describe",
		func(want string, args ...string) {
			_, err := inspect(args...)
			Expect(err).To(MatchError(ContainSubstring(want)))
		},
		Entry("no path", "want one or two paths"),
		Entry("three paths", "want one or two paths", "a", "b", "c"),
		Entry("two adapters", "both adapters", filepath.Join(tinyDir, "llama-gqa", "adapters", "mlp-r8"), filepath.Join(tinyDir, "llama-gqa", "adapters", "layer1")),
		Entry("two models", "both models", filepath.Join(tinyDir, "llama-gqa"), filepath.Join(tinyDir, "llama-mha")),
		Entry("a folder that is neither", "neither config.json", filepath.Join(tinyDir, "golden")),
		Entry("a missing model", "no such folder", "./nowhere"),
		Entry("an unknown flag", "flag provided but not defined", "--nope", filepath.Join(tinyDir, "llama-gqa")),
	)
})

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	Expect(err).NotTo(HaveOccurred())
	return a
}
