// Package adapter reads, checks and writes PEFT LoRA adapters.
//
// An Adapter holds, for every adapted module of the base model, the LoRA
// factors A (r x in) and B (out x r) and the per-module rank and alpha after
// rank_pattern and alpha_pattern are applied. The update a module adds to its
// base weight is Scaling() * B @ A.
package adapter

import (
	"encoding/json"
	"fmt"
	"math"
)

// Config mirrors the fields of PEFT's adapter_config.json that loramix uses.
// Unknown fields are kept in Extra so that a config can be written back.
type Config struct {
	PeftType            string             `json:"peft_type"`
	R                   int                `json:"r"`
	LoraAlpha           float64            `json:"lora_alpha"`
	LoraDropout         float64            `json:"lora_dropout"`
	UseRSLoRA           bool               `json:"use_rslora"`
	UseDoRA             bool               `json:"use_dora"`
	LoraBias            bool               `json:"lora_bias"`
	TargetModules       TargetModules      `json:"target_modules"`
	RankPattern         map[string]int     `json:"rank_pattern"`
	AlphaPattern        map[string]float64 `json:"alpha_pattern"`
	FanInFanOut         bool               `json:"fan_in_fan_out"`
	LayersToTransform   []int              `json:"layers_to_transform"`
	LayersPattern       any                `json:"layers_pattern"`
	Bias                string             `json:"bias"`
	ModulesToSave       []string           `json:"modules_to_save"`
	BaseModelNameOrPath string             `json:"base_model_name_or_path"`
	TaskType            string             `json:"task_type"`
	InferenceMode       bool               `json:"inference_mode"`
	Extra               map[string]any     `json:"-"`

	// The order of rank_pattern's and alpha_pattern's keys in the file: PEFT
	// uses the first key that matches. Empty for configs built in Go, which
	// then use the keys sorted.
	rankOrder, alphaOrder []string
}

// TargetModules is PEFT's target_modules: either a list of module-name
// suffixes or a single regular expression matched against the full name.
type TargetModules struct {
	Names []string // set when the config holds a list
	Regex string   // set when the config holds a string
}

// UnmarshalJSON reads null, a list of names or a regular expression string.
func (t *TargetModules) UnmarshalJSON(b []byte) error {
	*t = TargetModules{}
	var re *string
	if err := json.Unmarshal(b, &re); err == nil {
		if re != nil {
			t.Regex = *re
		}
		return nil
	}
	if err := json.Unmarshal(b, &t.Names); err != nil {
		return fmt.Errorf("want a list of module names or a regular expression, got %s", b)
	}
	return nil
}

// MarshalJSON writes the form the config was read in: a string, a list or null.
func (t TargetModules) MarshalJSON() ([]byte, error) {
	if t.Regex != "" {
		return json.Marshal(t.Regex)
	}
	if t.Names == nil {
		return []byte("null"), nil
	}
	return json.Marshal(t.Names)
}

// Module is the LoRA pair of one adapted linear layer.
type Module struct {
	// Name is the base model's module name, e.g. "model.layers.0.mlp.gate_proj".
	Name    string
	R       int
	Alpha   float64
	RSLoRA  bool
	In, Out int
	A       []float32 // (R, In), row-major
	B       []float32 // (Out, R), row-major
}

// Scaling returns the factor applied to B @ A: alpha/r, or alpha/sqrt(r)
// under rsLoRA.
func (m *Module) Scaling() float64 {
	if m.RSLoRA {
		return m.Alpha / math.Sqrt(float64(m.R))
	}
	return m.Alpha / float64(m.R)
}

// Adapter is a loaded LoRA adapter.
type Adapter struct {
	Name    string // the adapter's name within a session (e.g. "fren")
	Dir     string // where it was loaded from, if anywhere
	Config  Config
	Modules map[string]*Module // keyed by Module.Name
}

// ModuleNames returns the adapted module names in a stable order (layer
// index, then name).
func (a *Adapter) ModuleNames() []string {
	names := make([]string, 0, len(a.Modules))
	for n := range a.Modules {
		names = append(names, n)
	}
	sortModuleNames(names)
	return names
}
