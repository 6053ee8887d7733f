package adapter

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"loramix/engine/dtype"
	"loramix/engine/safetensors"
)

// PEFT's file names and tensor key prefix for a saved LoRA adapter.
const (
	saveConfigFile  = "adapter_config.json"
	saveWeightsFile = "adapter_model.safetensors"
	saveKeyPrefix   = "base_model.model."
)

// PEFTKeys returns the PEFT state-dict keys of a module's A and B factors:
// base_model.model.<module>.lora_A.weight and ...lora_B.weight.
func PEFTKeys(module string) (a, b string) {
	return saveKeyPrefix + module + ".lora_A.weight", saveKeyPrefix + module + ".lora_B.weight"
}

// Save writes a as a PEFT adapter directory that PeftModel.from_pretrained
// loads: adapter_config.json (the config, with inference_mode true as PEFT's
// save_pretrained writes it) and adapter_model.safetensors (float32 A (r, in)
// and B (out, r) per module under PEFT's key names). dir is created if
// needed. Each file is written atomically (temporary file, then rename), the
// weights first, so a reader never sees a config without its weights. Save
// checks every module's shapes first and writes nothing if one is wrong.
func Save(dir string, a *Adapter) error {
	if len(a.Modules) == 0 {
		return fmt.Errorf("adapter: save %s: no modules", dir)
	}
	tensors := make([]safetensors.Tensor, 0, 2*len(a.Modules))
	for _, name := range a.ModuleNames() {
		m := a.Modules[name]
		if m.Name != name {
			return fmt.Errorf("adapter: save %s: module %q is stored under %q", dir, m.Name, name)
		}
		if m.R <= 0 || m.In <= 0 || m.Out <= 0 || len(m.A) != m.R*m.In || len(m.B) != m.Out*m.R {
			return fmt.Errorf("adapter: save %s: module %s: A has %d values and B %d, want r=%d x in=%d and out=%d x r",
				dir, name, len(m.A), len(m.B), m.R, m.In, m.Out)
		}
		ka, kb := PEFTKeys(name)
		ab, err := dtype.FromFloat32(m.A, dtype.F32)
		if err != nil {
			return err
		}
		bb, err := dtype.FromFloat32(m.B, dtype.F32)
		if err != nil {
			return err
		}
		tensors = append(tensors,
			safetensors.Tensor{Name: ka, DType: dtype.F32, Shape: []int{m.R, m.In}, Data: ab},
			safetensors.Tensor{Name: kb, DType: dtype.F32, Shape: []int{m.Out, m.R}, Data: bb})
	}
	cfg, err := json.MarshalIndent(ConfigMap(a.Config), "", "  ")
	if err != nil {
		return fmt.Errorf("adapter: save %s: config: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("adapter: save: %w", err)
	}
	if err := safetensors.Write(filepath.Join(dir, saveWeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("adapter: save: %w", err)
	}
	if err := safetensors.WriteFileAtomic(filepath.Join(dir, saveConfigFile), append(cfg, '\n')); err != nil {
		return fmt.Errorf("adapter: save %s: %w", filepath.Join(dir, saveConfigFile), err)
	}
	return nil
}

// ConfigMap returns c as the key/value map of a PEFT adapter_config.json:
// the fields of Extra, overridden by the typed fields. Keys are written
// sorted, as PEFT writes them.
func ConfigMap(c Config) map[string]any {
	m := make(map[string]any, len(c.Extra)+20)
	for k, v := range c.Extra {
		m[k] = v
	}
	orNull := func(v any, ok bool) any {
		if !ok {
			return nil
		}
		return v
	}
	peftType := c.PeftType
	if peftType == "" {
		peftType = "LORA"
	}
	bias := c.Bias
	if bias == "" {
		bias = "none"
	}
	m["peft_type"] = peftType
	m["r"] = c.R
	m["lora_alpha"] = c.LoraAlpha
	m["lora_dropout"] = c.LoraDropout
	m["use_rslora"] = c.UseRSLoRA
	m["use_dora"] = c.UseDoRA
	m["lora_bias"] = c.LoraBias
	switch {
	case c.TargetModules.Regex != "":
		m["target_modules"] = c.TargetModules.Regex
	case len(c.TargetModules.Names) > 0:
		m["target_modules"] = c.TargetModules.Names
	default:
		m["target_modules"] = nil
	}
	rp := c.RankPattern
	if rp == nil {
		rp = map[string]int{}
	}
	ap := c.AlphaPattern
	if ap == nil {
		ap = map[string]float64{}
	}
	m["rank_pattern"] = rp
	m["alpha_pattern"] = ap
	m["fan_in_fan_out"] = c.FanInFanOut
	m["layers_to_transform"] = orNull(c.LayersToTransform, c.LayersToTransform != nil)
	m["layers_pattern"] = c.LayersPattern
	m["bias"] = bias
	m["modules_to_save"] = orNull(c.ModulesToSave, c.ModulesToSave != nil)
	m["base_model_name_or_path"] = orNull(c.BaseModelNameOrPath, c.BaseModelNameOrPath != "")
	m["task_type"] = orNull(c.TaskType, c.TaskType != "")
	m["inference_mode"] = true
	return m
}
