package adapter

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzAdapterConfig feeds arbitrary text to the adapter_config.json parser.
// It must never panic; a config it accepts must resolve every Llama module
// to a positive rank.
func FuzzAdapterConfig(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "tiny", "*", "adapters", "*", "adapter_config.json"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"peft_type":"LORA","r":4,"target_modules":"all-linear","layers_to_transform":3,"layers_pattern":["layers"],"exclude_modules":".*k_proj"}`))
	f.Add([]byte(`{"peft_type":"LORA","r":4,"rank_pattern":{"a":1,"b":2},"alpha_pattern":{"c":3}}`))
	modules := []string{"model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj", "model.layers.12.mlp.up_proj", "lm_head"}
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseConfig("fuzz.json", text)
		if err != nil {
			return
		}
		for _, m := range modules {
			r, _, _, err := c.ModuleRank(m)
			if err != nil {
				t.Fatalf("accepted config fails on %s: %v", m, err)
			}
			if r <= 0 {
				t.Fatalf("%s resolves to rank %d", m, r)
			}
		}
		cm := ConfigMap(c)
		if cm["peft_type"] != "LORA" {
			t.Fatalf("ConfigMap lost peft_type: %v", cm["peft_type"])
		}
	})
}
