package adapter

import (
	"fmt"
	"path/filepath"
	"strings"

	"loramix/engine/checkpoint"
)

// Validate checks an adapter against the base model it is to be applied to.
// Errors: a module that is not a decoder linear layer of the base (LoRA on
// the embeddings or lm_head is refused), a module whose (out, in) differs
// from the base weight's shape (the error names the module and both
// shapes), a module the config does not target, and a module the config
// targets that has no tensors. Warnings (returned, not errors): a
// base_model_name_or_path that names another model, and fan_in_fan_out,
// which PEFT ignores for Llama's nn.Linear layers and so does loramix.
// w may be nil; shapes then come from cfg alone.
func Validate(a *Adapter, cfg *checkpoint.Config, w checkpoint.Weights) (warnings []string, err error) {
	where := a.Dir
	if where == "" {
		where = a.Name
	}
	m, err := newMatcher(&a.Config)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %v", where, err)
	}
	for _, name := range a.ModuleNames() {
		mod := a.Modules[name]
		shape, role, ok := cfg.LinearShape(name)
		switch {
		case ok && role == checkpoint.Embed:
			return nil, fmt.Errorf("adapter %s: module %s: LoRA on embeddings is not supported", where, name)
		case ok && role == checkpoint.LMHead:
			return nil, fmt.Errorf("adapter %s: module %s: LoRA on lm_head is not supported", where, name)
		case !ok:
			return nil, fmt.Errorf("adapter %s: module %s is not a linear layer of the base (%d layers)", where, name, cfg.NumHiddenLayers)
		}
		if w != nil {
			info, found := w.Info(name + ".weight")
			if !found {
				return nil, fmt.Errorf("adapter %s: module %s: the base has no tensor %s.weight", where, name, name)
			}
			shape = info.Shape
		}
		if len(shape) != 2 || shape[0] != mod.Out || shape[1] != mod.In {
			return nil, fmt.Errorf("adapter %s: module %s: the adapter's update has shape [%d %d] (out, in), the base weight %v",
				where, name, mod.Out, mod.In, shape)
		}
		if !m.targets(name) {
			return nil, fmt.Errorf("adapter %s: module %s has tensors, but adapter_config.json's target_modules/layers_to_transform do not target it", where, name)
		}
	}
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		for _, role := range []checkpoint.Role{checkpoint.WQ, checkpoint.WK, checkpoint.WV, checkpoint.WO, checkpoint.WGate, checkpoint.WUp, checkpoint.WDown} {
			name := strings.TrimSuffix(checkpoint.TensorName(role, l), ".weight")
			if _, have := a.Modules[name]; !have && m.targets(name) {
				return nil, fmt.Errorf("adapter %s: adapter_config.json targets %s, but the weights have no lora_A/lora_B for it", where, name)
			}
		}
	}
	if a.Config.FanInFanOut {
		warnings = append(warnings, fmt.Sprintf("adapter %s: fan_in_fan_out is true, but Llama's layers are nn.Linear; PEFT ignores it and so does loramix", where))
	}
	if base := a.Config.BaseModelNameOrPath; base != "" && !sameModel(base, w) {
		warnings = append(warnings, fmt.Sprintf("adapter %s: trained on %q, applied to %s", where, base, baseName(w)))
	}
	return warnings, nil
}

// baseName describes the base model for messages: its hub id when it lives
// in a Hugging Face cache, else its folder.
func baseName(w checkpoint.Weights) string {
	if w == nil {
		return "a base of unknown origin"
	}
	if id := hubIDOf(w.Source()); id != "" {
		return id
	}
	return filepath.Dir(w.Source())
}

// hubIDOf returns "org/name" for a path inside .../models--org--name/..., or "".
func hubIDOf(path string) string {
	for _, part := range strings.Split(filepath.ToSlash(path), "/") {
		if rest, ok := strings.CutPrefix(part, "models--"); ok {
			return strings.Replace(rest, "--", "/", 1)
		}
	}
	return ""
}

// sameModel reports whether an adapter's base_model_name_or_path plausibly
// names the base: the same hub id, the same folder, or the same last
// path element.
func sameModel(base string, w checkpoint.Weights) bool {
	if w == nil {
		return true // nothing to compare with
	}
	dir := filepath.Dir(w.Source())
	cands := []string{dir, filepath.Base(dir), hubIDOf(w.Source())}
	if id := hubIDOf(w.Source()); id != "" {
		cands = append(cands, filepath.Base(id))
	}
	b := strings.TrimSuffix(filepath.ToSlash(base), "/")
	for _, c := range cands {
		if c == "" {
			continue
		}
		if c == b || c == filepath.Base(b) {
			return true
		}
		if abs1, err1 := filepath.Abs(c); err1 == nil {
			if abs2, err2 := filepath.Abs(b); err2 == nil && abs1 == abs2 {
				return true
			}
		}
	}
	return false
}
