package checkpoint_test

import (
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/checkpoint"
)

// llama2Config is meta-llama/Llama-2-7b-hf's config.json (transformers 4 names).
const llama2Config = `{
  "_name_or_path": "meta-llama/Llama-2-7b-hf",
  "architectures": ["LlamaForCausalLM"],
  "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008,
  "max_position_embeddings": 4096, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "tie_word_embeddings": false, "torch_dtype": "float16",
  "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000
}`

var _ = Describe("Config", func() {
	It("reads the tiny checkpoints that transformers 5 wrote", func() {
		mha, err := checkpoint.LoadConfig(filepath.Join(tiny, "llama-mha"))
		Expect(err).NotTo(HaveOccurred())
		Expect(mha.HiddenSize).To(Equal(64))
		Expect(mha.IntermediateSize).To(Equal(172))
		Expect(mha.NumHiddenLayers).To(Equal(2))
		Expect(mha.NumAttentionHeads).To(Equal(4))
		Expect(mha.NumKeyValueHeads).To(Equal(4))
		Expect(mha.HeadDim()).To(Equal(16))
		Expect(mha.KVDim()).To(Equal(64))
		Expect(mha.VocabSize).To(Equal(320))
		Expect(mha.RMSNormEps).To(Equal(1e-5))
		Expect(mha.RopeTheta).To(Equal(10000.0))
		Expect(mha.RopeScaling).To(BeNil())
		Expect(mha.RopeFactor()).To(Equal(1.0))
		Expect(mha.MaxPositionEmbeddings).To(Equal(128))
		Expect(mha.TieWordEmbeddings).To(BeFalse())
		Expect(mha.BOSTokenID).To(Equal(1))
		Expect(mha.EOSTokenIDs).To(Equal([]int{2}))
		Expect(mha.TorchDType).To(Equal("float32"))
		Expect(mha.Generation.Present).To(BeTrue())
		Expect(mha.Generation.BOSTokenID).To(Equal(1))
		Expect(mha.Generation.EOSTokenIDs).To(Equal([]int{2}))
		Expect(mha.Generation.PadTokenID).To(Equal(0))
		Expect(mha.Generation.MaxNewTokens).To(Equal(16))
		Expect(mha.Generation.DoSample).To(BeFalse())

		gqa, err := checkpoint.LoadConfig(filepath.Join(tiny, "llama-gqa"))
		Expect(err).NotTo(HaveOccurred())
		Expect(gqa.NumKeyValueHeads).To(Equal(2))
		Expect(gqa.KVDim()).To(Equal(32))
		Expect(gqa.GroupSize()).To(Equal(2))
		Expect(gqa.RMSNormEps).To(Equal(1e-6))
		Expect(gqa.RopeScaling).To(Equal(&checkpoint.RopeScaling{Type: "linear", Factor: 2}))

		tied, err := checkpoint.LoadConfig(filepath.Join(tiny, "llama-tied"))
		Expect(err).NotTo(HaveOccurred())
		Expect(tied.TieWordEmbeddings).To(BeTrue())
		Expect(tied.HeadDim()).To(Equal(8))
		Expect(tied.LMHeadName()).To(Equal("model.embed_tokens.weight"))
	})

	It("reads Llama 2's config with transformers' defaults and the right parameter count", func() {
		c, err := checkpoint.ParseConfig("config.json", []byte(llama2Config))
		Expect(err).NotTo(HaveOccurred())
		Expect(c.HeadDim()).To(Equal(128))
		Expect(c.KVDim()).To(Equal(4096))
		Expect(c.RopeTheta).To(Equal(10000.0)) // absent: the default
		Expect(c.RopeScaling).To(BeNil())
		Expect(c.TorchDType).To(Equal("float16"))
		Expect(c.Generation.Present).To(BeFalse())
		Expect(c.EOS()).To(Equal([]int{2}))
		var n int64
		for _, e := range c.Expected() {
			m := int64(1)
			for _, d := range e.Shape {
				m *= int64(d)
			}
			n += m
		}
		Expect(n).To(Equal(int64(6738415616))) // Llama-2-7b's published 6.74 B
		ex := c.Expected()
		Expect(ex[0].Name).To(Equal("model.embed_tokens.weight"))
		Expect(ex[len(ex)-1].Name).To(Equal("lm_head.weight"))
		Expect(ex).To(HaveLen(3 + 9*32))
	})

	It("reads transformers 4's rope_scaling and a list of eos ids", func() {
		c, err := checkpoint.ParseConfig("config.json", []byte(`{"model_type":"llama","hidden_size":64,"intermediate_size":172,
			"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":384,
			"rope_theta":500000.0,"rope_scaling":{"type":"linear","factor":4.0},"eos_token_id":[2,7],"bos_token_id":null}`))
		Expect(err).NotTo(HaveOccurred())
		Expect(c.RopeTheta).To(Equal(500000.0))
		Expect(c.RopeFactor()).To(Equal(4.0))
		Expect(c.EOSTokenIDs).To(Equal([]int{2, 7}))
		Expect(c.BOSTokenID).To(Equal(-1))
	})

	DescribeTable("refuses configs it cannot run, naming the file and the field",
		func(text, wantField string) {
			_, err := checkpoint.ParseConfig("/some/config.json", []byte(text))
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("/some/config.json"))
			Expect(err.Error()).To(ContainSubstring(wantField))
		},
		Entry("not JSON", `{"model_type":`, "not a valid config"),
		Entry("another architecture", `{"model_type":"mistral"}`, "model_type"),
		Entry("missing hidden_size", `{"model_type":"llama","intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":8}`, "hidden_size is missing"),
		Entry("negative size", `{"model_type":"llama","hidden_size":-64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":8}`, "hidden_size"),
		Entry("kv heads that do not divide heads", `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3,"vocab_size":8}`, "num_key_value_heads"),
		Entry("heads that do not divide hidden", `{"model_type":"llama","hidden_size":66,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":8}`, "num_attention_heads"),
		Entry("yarn rope scaling", `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":8,"rope_scaling":{"rope_type":"yarn","factor":2}}`, "yarn"),
		Entry("linear scaling without factor", `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":8,"rope_parameters":{"rope_type":"linear","rope_theta":10000}}`, "factor"),
		Entry("gelu", `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":8,"hidden_act":"gelu"}`, "hidden_act"),
		Entry("biases", `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":8,"attention_bias":true}`, "attention_bias"),
		Entry("a string eos id", `{"model_type":"llama","hidden_size":64,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":8,"eos_token_id":"x"}`, "eos_token_id"),
	)

	It("names generation_config.json when it is broken", func() {
		_, err := checkpoint.ParseGenerationConfig("/m/generation_config.json", []byte(`{"max_new_tokens": -3}`))
		Expect(err).To(MatchError(ContainSubstring("/m/generation_config.json: max_new_tokens")))
	})
})

var _ = Describe("the name table", func() {
	It("maps names to roles and back", func() {
		for _, l := range []int{0, 7, 31} {
			for _, r := range []checkpoint.Role{checkpoint.WQ, checkpoint.WK, checkpoint.WV, checkpoint.WO, checkpoint.WGate, checkpoint.WUp, checkpoint.WDown, checkpoint.AttnNorm, checkpoint.MLPNorm} {
				role, layer, ok := checkpoint.ParseName(checkpoint.TensorName(r, l))
				Expect(ok).To(BeTrue())
				Expect(role).To(Equal(r))
				Expect(layer).To(Equal(l))
			}
		}
		Expect(checkpoint.TensorName(checkpoint.WGate, 3)).To(Equal("model.layers.3.mlp.gate_proj.weight"))
		_, _, ok := checkpoint.ParseName("model.layers.01.mlp.gate_proj.weight")
		Expect(ok).To(BeFalse())
		_, _, ok = checkpoint.ParseName("model.layers.x.mlp.gate_proj.weight")
		Expect(ok).To(BeFalse())
	})

	It("gives linear shapes as (out, in)", func() {
		c, err := checkpoint.LoadConfig(filepath.Join(tiny, "llama-gqa"))
		Expect(err).NotTo(HaveOccurred())
		s, role, ok := c.LinearShape("model.layers.1.self_attn.k_proj")
		Expect(ok).To(BeTrue())
		Expect(role).To(Equal(checkpoint.WK))
		Expect(s).To(Equal([]int{32, 64}))
		s, _, ok = c.LinearShape("model.layers.0.mlp.down_proj")
		Expect(ok).To(BeTrue())
		Expect(s).To(Equal([]int{64, 172}))
		_, _, ok = c.LinearShape("model.layers.2.mlp.down_proj") // only 2 layers
		Expect(ok).To(BeFalse())
		_, _, ok = c.LinearShape("model.norm")
		Expect(ok).To(BeFalse())
	})
})
