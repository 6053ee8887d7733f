package adapter_test

import (
	"encoding/json"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/adapter"
)

func parse(text string) adapter.Config {
	c, err := adapter.ParseConfig("adapter_config.json", []byte(text))
	Expect(err).NotTo(HaveOccurred())
	return c
}

func rank(c adapter.Config, module string) (int, float64, bool) {
	r, alpha, targeted, err := c.ModuleRank(module)
	Expect(err).NotTo(HaveOccurred())
	return r, alpha, targeted
}

var _ = Describe("PEFT's per-module resolution", func() {
	It("takes the first matching pattern key in file order, at a dot boundary", func() {
		a := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["down_proj"],
			"rank_pattern":{"layers.0.mlp.down_proj":2,"down_proj":4},"alpha_pattern":{"proj":1}}`)
		b := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["down_proj"],
			"rank_pattern":{"down_proj":4,"layers.0.mlp.down_proj":2}}`)
		r, alpha, ok := rank(a, "model.layers.0.mlp.down_proj")
		Expect([]any{r, alpha, ok}).To(Equal([]any{2, 16.0, true})) // "proj" does not end at a dot boundary
		r, _, _ = rank(a, "model.layers.1.mlp.down_proj")
		Expect(r).To(Equal(4))
		r, _, _ = rank(b, "model.layers.0.mlp.down_proj")
		Expect(r).To(Equal(4)) // the first key wins
		// "layers.1" must not match "layers.11": the key must cover whole segments to the end.
		c := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj"],"rank_pattern":{"1.self_attn.q_proj":3}}`)
		r, _, _ = rank(c, "model.layers.11.self_attn.q_proj")
		Expect(r).To(Equal(8))
		r, _, _ = rank(c, "model.layers.1.self_attn.q_proj")
		Expect(r).To(Equal(3))
	})

	It("matches a target_modules string against the whole name, a list by suffix", func() {
		re := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":"model\\.layers\\.1\\..*_proj"}`)
		_, _, ok := rank(re, "model.layers.1.mlp.up_proj")
		Expect(ok).To(BeTrue())
		_, _, ok = rank(re, "model.layers.10.mlp.up_proj")
		Expect(ok).To(BeFalse())
		_, _, ok = rank(re, "x.model.layers.1.mlp.up_proj") // a full match, not a search
		Expect(ok).To(BeFalse())
		list := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["up_proj"]}`)
		_, _, ok = rank(list, "model.layers.3.mlp.up_proj")
		Expect(ok).To(BeTrue())
		_, _, ok = rank(list, "model.layers.3.mlp.xup_proj")
		Expect(ok).To(BeFalse())
	})

	It("applies layers_to_transform (a number or a list) and layers_pattern", func() {
		one := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["o_proj"],"layers_to_transform":1}`)
		Expect(one.LayersToTransform).To(Equal([]int{1}))
		_, _, ok := rank(one, "model.layers.1.self_attn.o_proj")
		Expect(ok).To(BeTrue())
		_, _, ok = rank(one, "model.layers.0.self_attn.o_proj")
		Expect(ok).To(BeFalse())
		pat := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["o_proj"],"layers_to_transform":[0,2],"layers_pattern":"layers"}`)
		_, _, ok = rank(pat, "model.layers.2.self_attn.o_proj")
		Expect(ok).To(BeTrue())
		_, _, ok = rank(pat, "model.layers.1.self_attn.o_proj")
		Expect(ok).To(BeFalse())
		wrong := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["o_proj"],"layers_to_transform":[0],"layers_pattern":["blocks"]}`)
		_, _, ok = rank(wrong, "model.layers.0.self_attn.o_proj")
		Expect(ok).To(BeFalse())
	})

	It("expands all-linear, defaults to q_proj and v_proj, and honours exclude_modules", func() {
		all := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":"all-linear","exclude_modules":["k_proj"]}`)
		for _, m := range []string{"q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} {
			_, _, ok := rank(all, "model.layers.0.self_attn."+m)
			Expect(ok).To(BeTrue(), m)
		}
		_, _, ok := rank(all, "model.layers.0.self_attn.k_proj")
		Expect(ok).To(BeFalse())
		_, _, ok = rank(all, "lm_head")
		Expect(ok).To(BeFalse())
		def := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":null}`)
		_, _, ok = rank(def, "model.layers.0.self_attn.v_proj")
		Expect(ok).To(BeTrue())
		_, _, ok = rank(def, "model.layers.0.mlp.up_proj")
		Expect(ok).To(BeFalse())
	})

	It("writes target_modules back in the form it was read", func() {
		for _, text := range []string{`".*\\.q_proj"`, `["q_proj","v_proj"]`, `null`} {
			c := parse(`{"peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":` + text + `}`)
			b, err := json.Marshal(c.TargetModules)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(b)).To(Equal(text))
		}
	})

	DescribeTable("rejects nonsense, naming the field",
		func(text, want string) {
			_, err := adapter.ParseConfig("/a/adapter_config.json", []byte(text))
			Expect(err).To(MatchError(And(ContainSubstring("/a/adapter_config.json"), ContainSubstring(want))))
		},
		Entry("zero r", `{"peft_type":"LORA","r":0}`, "r is 0"),
		Entry("a zero rank_pattern", `{"peft_type":"LORA","r":8,"rank_pattern":{"q_proj":0}}`, `rank_pattern["q_proj"]`),
		Entry("a bad rank_pattern key", `{"peft_type":"LORA","r":8,"rank_pattern":{"q_proj(":2}}`, "rank_pattern key"),
		Entry("a rank_pattern list", `{"peft_type":"LORA","r":8,"rank_pattern":[1]}`, `field "rank_pattern"`),
		Entry("negative layers", `{"peft_type":"LORA","r":8,"layers_to_transform":[-1]}`, "layers_to_transform"),
		Entry("a bad layers_pattern", `{"peft_type":"LORA","r":8,"layers_pattern":3}`, "layers_pattern"),
		Entry("null", `null`, "not a valid adapter config"),
		Entry("aLoRA", `{"peft_type":"LORA","r":8,"alora_invocation_tokens":[5]}`, "alora_invocation_tokens"),
	)
})
