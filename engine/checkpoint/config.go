// Package checkpoint reads Hugging Face Llama checkpoints: config.json,
// generation_config.json and the weights, as one model.safetensors, as
// shards listed by model.safetensors.index.json, or as PyTorch
// pytorch_model*.bin zip pickles. Safetensors files are memory-mapped, so a
// large checkpoint never sits in the Go heap twice.
//
// A hub id such as "meta-llama/Llama-2-7b-hf" resolves offline from the
// Hugging Face cache (see Resolve). Every problem with the files is returned
// as an error that names the file, and the tensor or field where there is one.
package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// RopeScaling is a linear RoPE scaling: positions are divided by Factor
// before the rotary angles are computed. Other scaling types are refused.
type RopeScaling struct {
	Type   string  // "linear"
	Factor float64 // > 0
}

// GenerationConfig holds the fields of generation_config.json that loramix
// uses. Present is false when the checkpoint has no such file.
type GenerationConfig struct {
	Present      bool
	BOSTokenID   int   // -1 when unset
	EOSTokenIDs  []int // empty when unset
	PadTokenID   int   // -1 when unset
	MaxNewTokens int   // 0 when unset
	MaxLength    int   // 0 when unset
	DoSample     bool
	Temperature  float64 // 0 when unset
	TopP         float64 // 0 when unset
	TopK         int     // 0 when unset
}

// Config is a Llama model's configuration, from config.json with the
// defaults of transformers' LlamaConfig for fields that are absent.
type Config struct {
	ModelType             string
	Architectures         []string
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int
	HeadDimOverride       int // config.json's head_dim; 0 when absent (see HeadDim)
	RMSNormEps            float64
	RopeTheta             float64
	RopeScaling           *RopeScaling // nil: no scaling
	MaxPositionEmbeddings int
	VocabSize             int
	TieWordEmbeddings     bool
	HiddenAct             string
	TorchDType            string // "float32", "float16", "bfloat16" or ""
	BOSTokenID            int    // -1 when null
	EOSTokenIDs           []int  // config.json's eos_token_id, one or several
	Generation            GenerationConfig
}

// HeadDim returns the size of one attention head: head_dim when config.json
// sets it, else hidden_size / num_attention_heads.
func (c *Config) HeadDim() int {
	if c.HeadDimOverride > 0 {
		return c.HeadDimOverride
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// QDim returns the width of the query projection, num_attention_heads * HeadDim.
func (c *Config) QDim() int { return c.NumAttentionHeads * c.HeadDim() }

// KVDim returns the width of the key and value projections,
// num_key_value_heads * HeadDim.
func (c *Config) KVDim() int { return c.NumKeyValueHeads * c.HeadDim() }

// GroupSize returns how many query heads share one key/value head.
func (c *Config) GroupSize() int { return c.NumAttentionHeads / c.NumKeyValueHeads }

// RopeFactor returns the linear RoPE scaling factor, 1 when there is none.
func (c *Config) RopeFactor() float64 {
	if c.RopeScaling == nil {
		return 1
	}
	return c.RopeScaling.Factor
}

// EOS returns the end-of-sequence ids: generation_config.json's when it
// sets them, else config.json's.
func (c *Config) EOS() []int {
	if len(c.Generation.EOSTokenIDs) > 0 {
		return c.Generation.EOSTokenIDs
	}
	return c.EOSTokenIDs
}

// parseIDs reads a token id field that may be absent, null, a number or a
// list of numbers. set is false when the field is absent; ids is empty for null.
func parseIDs(path, field string, raw json.RawMessage) (ids []int, set bool, err error) {
	if raw == nil {
		return nil, false, nil
	}
	var one *int
	if json.Unmarshal(raw, &one) == nil {
		if one != nil {
			ids = []int{*one}
		}
		return ids, true, nil
	}
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, false, fmt.Errorf("%s: %s is %s, want a token id or a list of ids", path, field, raw)
	}
	return ids, true, nil
}

// ropeJSON is rope_scaling (transformers 4) or rope_parameters (transformers 5).
type ropeJSON struct {
	Type      string   `json:"type"`
	RopeType  string   `json:"rope_type"`
	Factor    *float64 `json:"factor"`
	RopeTheta *float64 `json:"rope_theta"`
}

type configJSON struct {
	ModelType             string          `json:"model_type"`
	Architectures         []string        `json:"architectures"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           *ropeJSON       `json:"rope_scaling"`
	RopeParameters        *ropeJSON       `json:"rope_parameters"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	VocabSize             *int            `json:"vocab_size"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	HiddenAct             string          `json:"hidden_act"`
	TorchDType            string          `json:"torch_dtype"`
	DType                 string          `json:"dtype"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	AttentionBias         bool            `json:"attention_bias"`
	MLPBias               bool            `json:"mlp_bias"`
	PretrainingTP         *int            `json:"pretraining_tp"`
}

// LoadConfig reads dir/config.json and, when present, dir/generation_config.json.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	c, err := ParseConfig(path, b)
	if err != nil {
		return nil, err
	}
	gpath := filepath.Join(dir, "generation_config.json")
	gb, err := os.ReadFile(gpath)
	switch {
	case err == nil:
		g, err := ParseGenerationConfig(gpath, gb)
		if err != nil {
			return nil, err
		}
		c.Generation = g
	case !os.IsNotExist(err):
		return nil, fmt.Errorf("checkpoint %s: %w", gpath, err)
	}
	return c, nil
}

// ParseConfig parses the text of a config.json; path is used in errors.
// It applies LlamaConfig's defaults to absent optional fields and refuses
// what the engine does not implement (other architectures, biases, rope
// scalings other than linear, activations other than SiLU).
func ParseConfig(path string, b []byte) (*Config, error) {
	var j configJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%s: not a valid config: %v", path, err)
	}
	errf := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...))
	}
	if j.ModelType != "llama" {
		return nil, errf("model_type is %q; only \"llama\" is supported", j.ModelType)
	}
	c := &Config{
		ModelType: j.ModelType, Architectures: j.Architectures,
		RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 2048,
		HiddenAct: "silu", BOSTokenID: 1, EOSTokenIDs: []int{2},
		TorchDType: j.DType, Generation: GenerationConfig{BOSTokenID: -1, PadTokenID: -1},
	}
	if c.TorchDType == "" {
		c.TorchDType = j.TorchDType
	}
	required := []struct {
		field string
		src   *int
		dst   *int
	}{
		{"hidden_size", j.HiddenSize, &c.HiddenSize},
		{"intermediate_size", j.IntermediateSize, &c.IntermediateSize},
		{"num_hidden_layers", j.NumHiddenLayers, &c.NumHiddenLayers},
		{"num_attention_heads", j.NumAttentionHeads, &c.NumAttentionHeads},
		{"vocab_size", j.VocabSize, &c.VocabSize},
	}
	for _, r := range required {
		if r.src == nil {
			return nil, errf("%s is missing", r.field)
		}
		if *r.src <= 0 || *r.src > 1<<24 {
			return nil, errf("%s is %d, want a positive size", r.field, *r.src)
		}
		*r.dst = *r.src
	}
	c.NumKeyValueHeads = c.NumAttentionHeads
	if j.NumKeyValueHeads != nil {
		c.NumKeyValueHeads = *j.NumKeyValueHeads
	}
	if c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return nil, errf("num_key_value_heads %d must be positive and divide num_attention_heads %d", c.NumKeyValueHeads, c.NumAttentionHeads)
	}
	if j.HeadDim != nil && *j.HeadDim != 0 {
		if *j.HeadDim < 0 || *j.HeadDim > 1<<16 {
			return nil, errf("head_dim is %d, want a positive size", *j.HeadDim)
		}
		c.HeadDimOverride = *j.HeadDim
	} else if c.HiddenSize%c.NumAttentionHeads != 0 {
		return nil, errf("hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.HeadDim()%2 != 0 {
		return nil, errf("head dimension %d is odd; rotary embeddings need it even", c.HeadDim())
	}
	if j.RMSNormEps != nil {
		if !(*j.RMSNormEps > 0 && *j.RMSNormEps < 1) {
			return nil, errf("rms_norm_eps is %g, want 0 < eps < 1", *j.RMSNormEps)
		}
		c.RMSNormEps = *j.RMSNormEps
	}
	if j.MaxPositionEmbeddings != nil {
		if *j.MaxPositionEmbeddings <= 0 {
			return nil, errf("max_position_embeddings is %d, want > 0", *j.MaxPositionEmbeddings)
		}
		c.MaxPositionEmbeddings = *j.MaxPositionEmbeddings
	}
	if j.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *j.TieWordEmbeddings
	}
	if j.HiddenAct != "" {
		c.HiddenAct = j.HiddenAct
	}
	if c.HiddenAct != "silu" {
		return nil, errf("hidden_act is %q; only \"silu\" is supported", c.HiddenAct)
	}
	if j.AttentionBias || j.MLPBias {
		return nil, errf("attention_bias and mlp_bias are not supported")
	}
	if j.PretrainingTP != nil && *j.PretrainingTP > 1 {
		return nil, errf("pretraining_tp %d is not supported", *j.PretrainingTP)
	}
	bos, set, err := parseIDs(path, "bos_token_id", j.BOSTokenID)
	if err != nil {
		return nil, err
	}
	if set {
		c.BOSTokenID = -1
		if len(bos) > 0 {
			c.BOSTokenID = bos[0]
		}
	}
	eos, set, err := parseIDs(path, "eos_token_id", j.EOSTokenID)
	if err != nil {
		return nil, err
	}
	if set {
		c.EOSTokenIDs = eos
	}
	if err := c.setRope(path, &j); err != nil {
		return nil, err
	}
	return c, nil
}

// setRope reads rope_theta and the scaling from either the transformers 4
// fields (rope_theta, rope_scaling) or transformers 5's rope_parameters.
func (c *Config) setRope(path string, j *configJSON) error {
	if j.RopeTheta != nil {
		c.RopeTheta = *j.RopeTheta
	}
	scaling := j.RopeScaling
	if p := j.RopeParameters; p != nil {
		if p.RopeTheta != nil {
			c.RopeTheta = *p.RopeTheta
		}
		if scaling == nil {
			scaling = p
		}
	}
	if !(c.RopeTheta > 0) {
		return fmt.Errorf("%s: rope_theta is %g, want > 0", path, c.RopeTheta)
	}
	if scaling == nil {
		return nil
	}
	typ := scaling.RopeType
	if typ == "" {
		typ = scaling.Type
	}
	switch typ {
	case "", "default":
		return nil
	case "linear":
		if scaling.Factor == nil || !(*scaling.Factor > 0) {
			return fmt.Errorf("%s: linear rope scaling needs a factor > 0", path)
		}
		c.RopeScaling = &RopeScaling{Type: "linear", Factor: *scaling.Factor}
		return nil
	}
	return fmt.Errorf("%s: rope scaling type %q is not supported (only linear)", path, typ)
}

type generationJSON struct {
	BOSTokenID   json.RawMessage `json:"bos_token_id"`
	EOSTokenID   json.RawMessage `json:"eos_token_id"`
	PadTokenID   json.RawMessage `json:"pad_token_id"`
	MaxNewTokens *int            `json:"max_new_tokens"`
	MaxLength    *int            `json:"max_length"`
	DoSample     bool            `json:"do_sample"`
	Temperature  *float64        `json:"temperature"`
	TopP         *float64        `json:"top_p"`
	TopK         *int            `json:"top_k"`
}

// ParseGenerationConfig parses the text of a generation_config.json.
func ParseGenerationConfig(path string, b []byte) (GenerationConfig, error) {
	var j generationJSON
	g := GenerationConfig{Present: true, BOSTokenID: -1, PadTokenID: -1}
	if err := json.Unmarshal(b, &j); err != nil {
		return g, fmt.Errorf("%s: not a valid generation config: %v", path, err)
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		one  *int
		many *[]int
	}{{"bos_token_id", j.BOSTokenID, &g.BOSTokenID, nil}, {"pad_token_id", j.PadTokenID, &g.PadTokenID, nil}, {"eos_token_id", j.EOSTokenID, nil, &g.EOSTokenIDs}} {
		ids, _, err := parseIDs(path, f.name, f.raw)
		if err != nil {
			return g, err
		}
		if f.many != nil {
			*f.many = ids
		} else if len(ids) > 0 {
			*f.one = ids[0]
		}
	}
	g.DoSample = j.DoSample
	for _, f := range []struct {
		name string
		src  *int
		dst  *int
	}{{"max_new_tokens", j.MaxNewTokens, &g.MaxNewTokens}, {"max_length", j.MaxLength, &g.MaxLength}, {"top_k", j.TopK, &g.TopK}} {
		if f.src != nil {
			if *f.src < 0 {
				return g, fmt.Errorf("%s: %s is %d, want >= 0", path, f.name, *f.src)
			}
			*f.dst = *f.src
		}
	}
	if j.Temperature != nil {
		g.Temperature = *j.Temperature
	}
	if j.TopP != nil {
		g.TopP = *j.TopP
	}
	return g, nil
}
