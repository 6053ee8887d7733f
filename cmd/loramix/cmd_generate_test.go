package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/safetensors"
	"loramix/engine/tokenizer"
)

// parityGolden is the part of testdata/parity/<model>.json these specs use.
type parityGolden struct {
	Seqs     [][]int32 `json:"seqs"`
	Greedy   [][]int32 `json:"greedy"`
	Adapters map[string]struct {
		Greedy [][]int32 `json:"greedy"`
	} `json:"adapters"`
}

var _ = Describe("loramix generate", func() {
	const model = "../../testdata/tiny/llama-gqa"
	var g parityGolden
	BeforeEach(func() {
		b, err := os.ReadFile("../../testdata/parity/llama-gqa.json")
		Expect(err).NotTo(HaveOccurred())
		Expect(json.Unmarshal(b, &g)).To(Succeed())
	})
	run := func(args ...string) (generateOutput, string, error) {
		var out, errb bytes.Buffer
		err := runGenerate(args, &out, &errb)
		var o generateOutput
		if err == nil && bytes.HasPrefix(out.Bytes(), []byte("{")) {
			Expect(json.Unmarshal(out.Bytes(), &o)).To(Succeed())
		}
		return o, out.String() + errb.String(), err
	}
	ids := func(s []int32) string {
		b, _ := json.Marshal(s)
		return string(b[1 : len(b)-1])
	}

	It("continues token ids greedily as transformers does, without a tokenizer", func() {
		o, _, err := run("--model", model, "--quant", "fp32", "--prompt-ids", ids(g.Seqs[0]), "--max-new-tokens", "20", "--format", "json")
		Expect(err).NotTo(HaveOccurred())
		Expect(o.IDs).To(Equal(g.Greedy[0]))
		Expect(o.Text).To(BeNil())
	})

	It("applies the active adapter among several and writes the prompt logits", func() {
		out := filepath.Join(GinkgoT().TempDir(), "logits.safetensors")
		o, _, err := run("--model", model, "--quant", "fp32", "--prompt-ids", ids(g.Seqs[0]), "--max-new-tokens", "20", "--format", "json",
			"--adapter", "m="+model+"/adapters/mlp-r8", "--adapter", "p="+model+"/adapters/patterns", "--active", "p", "--logits-out", out)
		Expect(err).NotTo(HaveOccurred())
		Expect(o.IDs).To(Equal(g.Adapters["patterns"].Greedy[0]))

		f, err := safetensors.Open(out)
		Expect(err).NotTo(HaveOccurred())
		defer f.Close()
		got, info, err := f.Float32("logits")
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Shape).To(Equal([]int{len(g.Seqs[0]), 384}))
		gf, err := safetensors.Open("../../testdata/parity/llama-gqa.safetensors")
		Expect(err).NotTo(HaveOccurred())
		defer gf.Close()
		want, _, err := gf.Float32("patterns.s0")
		Expect(err).NotTo(HaveOccurred())
		var num, den float64
		for i := range want {
			num += math.Pow(float64(got[i]-want[i]), 2)
			den += math.Pow(float64(want[i]), 2)
		}
		Expect(math.Sqrt(num / den)).To(BeNumerically("<", 1e-4))
	})

	It("adds the decoded text when given a tokenizer", func() {
		path := realTokenizer()
		tok, err := tokenizer.Load(path)
		Expect(err).NotTo(HaveOccurred())
		o, _, err := run("--model", model, "--tokenizer", path, "--quant", "nf4", "--prompt-ids", ids(g.Seqs[1]), "--max-new-tokens", "5", "--format", "json")
		Expect(err).NotTo(HaveOccurred())
		Expect(o.IDs).To(HaveLen(5))
		Expect(o.Text).NotTo(BeNil())
		Expect(*o.Text).To(Equal(tok.Decode(toInts(o.IDs))))
	})

	It("samples deterministically for a seed", func() {
		args := []string{"--model", model, "--prompt-ids", "1,2,3", "--max-new-tokens", "12", "--temperature", "1.5", "--top-p", "0.9", "--seed", "7", "--format", "json"}
		a, _, err := run(args...)
		Expect(err).NotTo(HaveOccurred())
		b, _, err := run(args...)
		Expect(err).NotTo(HaveOccurred())
		Expect(a.IDs).To(Equal(b.IDs))
		c, _, err := run(append(args[:len(args)-3:len(args)-3], "8", "--format", "json")...)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.IDs).NotTo(Equal(a.IDs))
	})

	DescribeTable("refuses bad input with a clear error",
		func(want string, args ...string) {
			_, _, err := run(args...)
			Expect(err).To(MatchError(ContainSubstring(want)))
		},
		Entry("no model", "--model is required", "--prompt-ids", "1"),
		Entry("two prompts", "exactly one of", "--model", model, "--prompt", "hi", "--prompt-ids", "1"),
		Entry("text without a tokenizer", "need a tokenizer", "--model", model, "--prompt", "hi"),
		Entry("id outside the vocabulary", "outside the model's vocabulary", "--model", model, "--prompt-ids", "1,384"),
		Entry("not an id", `"x" is not a token id`, "--model", model, "--prompt-ids", "1,x"),
		Entry("bad quant", `quant "nf3"`, "--model", model, "--prompt-ids", "1", "--quant", "nf3"),
		Entry("unknown active adapter", `no adapter "zz"`, "--model", model, "--prompt-ids", "1", "--active", "zz"),
		Entry("missing model folder", "no-such-dir", "--model", "no-such-dir", "--prompt-ids", "1"),
	)
})

var _ = Describe("loramix inspect --nf4", func() {
	It("reports the NF4 error per decoder linear layer and the memory footprint", func() {
		var out bytes.Buffer
		Expect(runInspect([]string{"../../testdata/tiny/llama-gqa", "--nf4", "--json"}, &out)).To(Succeed())
		var rep struct {
			Model struct {
				NF4 struct {
					Layers []struct {
						Name   string  `json:"name"`
						RelErr float64 `json:"rel_err"`
					} `json:"layers"`
					BitsPerParam float64 `json:"bits_per_param"`
					TotalBytes   int64   `json:"total_bytes"`
				} `json:"nf4"`
			} `json:"model"`
		}
		Expect(json.Unmarshal(out.Bytes(), &rep)).To(Succeed())
		Expect(rep.Model.NF4.Layers).To(HaveLen(14))
		Expect(rep.Model.NF4.Layers[0].Name).To(Equal("model.layers.0.self_attn.q_proj.weight"))
		Expect(rep.Model.NF4.Layers[0].RelErr).To(BeNumerically("~", 0.095, 0.02))
		Expect(rep.Model.NF4.BitsPerParam).To(BeNumerically("~", 4.2, 0.1))
		Expect(rep.Model.NF4.TotalBytes).To(BeNumerically(">", 0))
	})
})
