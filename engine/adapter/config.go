package adapter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ConfigFile is the name of PEFT's adapter configuration file.
const ConfigFile = "adapter_config.json"

// LoadConfig reads and checks dir/adapter_config.json (see ParseConfig).
func LoadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("adapter %s: %w", dir, err)
	}
	return ParseConfig(path, b)
}

// ParseConfig parses the text of an adapter_config.json; path is used in
// errors, which name the field. Fields loramix does not model are kept in
// Extra. Adapters that need what loramix does not implement are refused:
// a peft_type other than LORA, DoRA, lora_bias, trained biases,
// modules_to_save, and PEFT's other LoRA variants.
func ParseConfig(path string, b []byte) (Config, error) {
	var c Config
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return c, fmt.Errorf("%s: not a valid adapter config: %v", path, err)
	}
	if raw == nil {
		return c, fmt.Errorf("%s: not a valid adapter config: null", path)
	}
	fields := map[string]any{
		"peft_type": &c.PeftType, "r": &c.R, "lora_alpha": &c.LoraAlpha, "lora_dropout": &c.LoraDropout,
		"use_rslora": &c.UseRSLoRA, "use_dora": &c.UseDoRA, "lora_bias": &c.LoraBias,
		"target_modules": &c.TargetModules, "fan_in_fan_out": &c.FanInFanOut,
		"layers_pattern": &c.LayersPattern, "bias": &c.Bias, "modules_to_save": &c.ModulesToSave,
		"base_model_name_or_path": &c.BaseModelNameOrPath, "task_type": &c.TaskType,
		"inference_mode": &c.InferenceMode,
	}
	for key, msg := range raw {
		var err error
		switch key {
		case "rank_pattern":
			c.rankOrder, err = orderedKeys(msg)
			if err == nil {
				err = json.Unmarshal(msg, &c.RankPattern)
			}
		case "alpha_pattern":
			c.alphaOrder, err = orderedKeys(msg)
			if err == nil {
				err = json.Unmarshal(msg, &c.AlphaPattern)
			}
		case "layers_to_transform":
			c.LayersToTransform, err = intOrList(msg)
		default:
			dst, known := fields[key]
			if !known {
				var v any
				if err := json.Unmarshal(msg, &v); err != nil {
					return c, fmt.Errorf("%s: field %q: %v", path, key, err)
				}
				if c.Extra == nil {
					c.Extra = map[string]any{}
				}
				c.Extra[key] = v
				continue
			}
			err = json.Unmarshal(msg, dst)
		}
		if err != nil {
			return c, fmt.Errorf("%s: field %q is %s: %v", path, key, short(msg), err)
		}
	}
	if err := c.check(); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

// refusedExtras are PEFT LoRA options that change what the adapter computes
// and that loramix does not implement; a config that sets one is refused.
var refusedExtras = []string{
	"target_parameters", "trainable_token_indices", "layer_replication",
	"alora_invocation_tokens", "use_qalora", "use_bdlora", "modules_to_tie",
}

// check refuses what loramix does not implement and values that make no sense.
func (c *Config) check() error {
	switch {
	case c.PeftType != "LORA":
		return fmt.Errorf("peft_type %q is not supported (only LORA)", c.PeftType)
	case c.UseDoRA:
		return fmt.Errorf("use_dora: DoRA adapters are not supported")
	case c.LoraBias:
		return fmt.Errorf("lora_bias: LoRA with a bias on B is not supported")
	case c.Bias != "" && c.Bias != "none":
		return fmt.Errorf("bias %q: adapters that train biases are not supported (only \"none\")", c.Bias)
	case len(c.ModulesToSave) > 0:
		return fmt.Errorf("modules_to_save %v: adapters that replace whole modules are not supported", c.ModulesToSave)
	case c.R <= 0:
		return fmt.Errorf("r is %d, want > 0", c.R)
	}
	for _, k := range refusedExtras {
		if isSet(c.Extra[k]) {
			return fmt.Errorf("%s is set (%v); that LoRA variant is not supported", k, c.Extra[k])
		}
	}
	for _, k := range c.rankKeys() {
		if c.RankPattern[k] <= 0 {
			return fmt.Errorf("rank_pattern[%q] is %d, want > 0", k, c.RankPattern[k])
		}
	}
	for _, l := range c.LayersToTransform {
		if l < 0 {
			return fmt.Errorf("layers_to_transform has %d, want layer indices >= 0", l)
		}
	}
	_, err := newMatcher(c)
	return err
}

// isSet reports whether a JSON value is something other than null, false,
// or an empty string, list or object.
func isSet(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// orderedKeys returns the keys of a JSON object in file order (nil for null).
func orderedKeys(msg json.RawMessage) ([]string, error) {
	d := json.NewDecoder(bytes.NewReader(msg))
	tok, err := d.Token()
	if err != nil || tok == nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("want an object")
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// intOrList reads null, an integer or a list of integers.
func intOrList(msg json.RawMessage) ([]int, error) {
	var one *int
	if err := json.Unmarshal(msg, &one); err == nil {
		if one == nil {
			return nil, nil
		}
		return []int{*one}, nil
	}
	var many []int
	err := json.Unmarshal(msg, &many)
	return many, err
}

func short(msg json.RawMessage) string {
	if len(msg) > 40 {
		return string(msg[:40]) + "..."
	}
	return string(msg)
}

// rankKeys and alphaKeys return the pattern keys in the order PEFT tries them.
func (c *Config) rankKeys() []string  { return patternOrder(c.rankOrder, c.RankPattern) }
func (c *Config) alphaKeys() []string { return patternOrder(c.alphaOrder, c.AlphaPattern) }

func patternOrder[V any](order []string, m map[string]V) []string {
	if len(order) == len(m) {
		ok := true
		for _, k := range order {
			if _, in := m[k]; !in {
				ok = false
			}
		}
		if ok {
			return order
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// llamaLinear are the decoder's linear layers: what "all-linear" means for a
// Llama (lm_head excluded, as in PEFT) and the candidates Validate checks.
var llamaLinear = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// llamaDefaultTargets is what PEFT targets on a Llama when target_modules is null.
var llamaDefaultTargets = []string{"q_proj", "v_proj"}

type pattern struct {
	key string
	re  *regexp.Regexp
}

// matcher decides, the way PEFT does, which modules a config adapts and
// with which rank and alpha.
type matcher struct {
	c            *Config
	targetRe     *regexp.Regexp // target_modules as a string: a full match
	targetNames  []string       // target_modules as a list: exact name or ".name" suffix
	excludeRe    *regexp.Regexp
	excludeNames []string
	layersRe     []*regexp.Regexp // how to find the layer index for layers_to_transform
	rank, alpha  []pattern
}

func newMatcher(c *Config) (*matcher, error) {
	m := &matcher{c: c}
	var err error
	switch t := c.TargetModules; {
	case strings.EqualFold(t.Regex, "all-linear"):
		m.targetNames = llamaLinear
	case t.Regex != "":
		if m.targetRe, err = regexp.Compile(`^(?:` + t.Regex + `)$`); err != nil {
			return nil, fmt.Errorf("target_modules %q is not a regular expression loramix can run: %v", t.Regex, err)
		}
	case len(t.Names) > 0:
		m.targetNames = t.Names
	default:
		m.targetNames = llamaDefaultTargets
	}
	switch ex := c.Extra["exclude_modules"].(type) {
	case nil:
	case string:
		if ex != "" {
			if m.excludeRe, err = regexp.Compile(`^(?:` + ex + `)$`); err != nil {
				return nil, fmt.Errorf("exclude_modules %q is not a regular expression loramix can run: %v", ex, err)
			}
		}
	case []any:
		for _, e := range ex {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("exclude_modules holds %v, not a name", e)
			}
			m.excludeNames = append(m.excludeNames, s)
		}
	default:
		return nil, fmt.Errorf("exclude_modules is %v, want a list or a string", ex)
	}
	var layerPats []string
	switch lp := c.LayersPattern.(type) {
	case nil:
	case string:
		if lp != "" {
			layerPats = []string{lp}
		}
	case []any:
		for _, e := range lp {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("layers_pattern holds %v, not a name", e)
			}
			layerPats = append(layerPats, s)
		}
	default:
		return nil, fmt.Errorf("layers_pattern is %v, want a list or a string", lp)
	}
	if len(layerPats) == 0 {
		m.layersRe = []*regexp.Regexp{regexp.MustCompile(`^.*?\.[^.]*\.(\d+)\.`)}
	}
	for _, p := range layerPats {
		re, err := regexp.Compile(`^.*?\.` + p + `\.(\d+)\.`)
		if err != nil {
			return nil, fmt.Errorf("layers_pattern %q is not a regular expression loramix can run: %v", p, err)
		}
		m.layersRe = append(m.layersRe, re)
	}
	for _, k := range c.rankKeys() {
		re, err := regexp.Compile(`^(.*\.)?(` + k + `)$`)
		if err != nil {
			return nil, fmt.Errorf("rank_pattern key %q is not a regular expression loramix can run: %v", k, err)
		}
		m.rank = append(m.rank, pattern{k, re})
	}
	for _, k := range c.alphaKeys() {
		re, err := regexp.Compile(`^(.*\.)?(` + k + `)$`)
		if err != nil {
			return nil, fmt.Errorf("alpha_pattern key %q is not a regular expression loramix can run: %v", k, err)
		}
		m.alpha = append(m.alpha, pattern{k, re})
	}
	return m, nil
}

// targets reports whether PEFT would put a LoRA layer on the module named
// key (e.g. "model.layers.0.mlp.gate_proj"): exclude_modules first, then
// target_modules (a full regex match, or an exact name or ".name" suffix),
// then, for a list, layers_to_transform.
func (m *matcher) targets(key string) bool {
	if m.excludeRe != nil && m.excludeRe.MatchString(key) || suffixMatch(key, m.excludeNames) {
		return false
	}
	if m.targetRe != nil {
		return m.targetRe.MatchString(key)
	}
	if !suffixMatch(key, m.targetNames) {
		return false
	}
	if len(m.c.LayersToTransform) == 0 {
		return true
	}
	for _, re := range m.layersRe {
		if sm := re.FindStringSubmatch(key); sm != nil {
			l, err := strconv.Atoi(sm[1])
			if err != nil {
				return false
			}
			for _, want := range m.c.LayersToTransform {
				if l == want {
					return true
				}
			}
			return false
		}
	}
	return false
}

func suffixMatch(key string, names []string) bool {
	for _, n := range names {
		if key == n || strings.HasSuffix(key, "."+n) {
			return true
		}
	}
	return false
}

// rankAlpha returns the rank and alpha PEFT gives the module: the value of
// the first rank_pattern (alpha_pattern) key that matches the end of the
// name at a dot boundary, else r (lora_alpha).
func (m *matcher) rankAlpha(key string) (int, float64) {
	r, alpha := m.c.R, m.c.LoraAlpha
	for _, p := range m.rank {
		if p.re.MatchString(key) {
			r = m.c.RankPattern[p.key]
			break
		}
	}
	for _, p := range m.alpha {
		if p.re.MatchString(key) {
			alpha = m.c.AlphaPattern[p.key]
			break
		}
	}
	return r, alpha
}

// ModuleRank returns the rank and alpha the config gives a module, and
// whether the config targets it at all, as PEFT resolves them.
func (c *Config) ModuleRank(module string) (r int, alpha float64, targeted bool, err error) {
	m, err := newMatcher(c)
	if err != nil {
		return 0, 0, false, err
	}
	r, alpha = m.rankAlpha(module)
	return r, alpha, m.targets(module), nil
}
