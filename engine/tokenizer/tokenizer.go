// Package tokenizer implements the Llama 2 family tokenizer read from a
// Hugging Face tokenizer.json: BPE over characters with byte fallback
// (<0xNN> tokens), the "▁" word marker, special tokens, and the matching
// decoder.
//
// Load follows transformers (LlamaTokenizerFast), which is the project's
// reference: when tokenizer_config.json names a Llama tokenizer class,
// transformers 5 ignores the normalizer and pre-tokenizer written in
// tokenizer.json and rebuilds them as a Metaspace pre-tokenizer (replace
// ' ' by '▁'; with legacy=true prepend '▁' to every piece of text between
// special tokens unless it already starts with '▁'; with legacy=false only
// to the first piece). LoadWith(path, Options{FilePipeline: true}) instead
// follows tokenizer.json literally, as the tokenizers library does. The two
// differ on text that starts with a space or with '▁'.
//
// A Tokenizer is safe for concurrent use.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Tokenizer encodes text to token ids and decodes ids to text.
type Tokenizer struct {
	vocab  map[string]int32 // model vocabulary: piece -> id
	pieces []string         // id -> piece (model vocabulary and added tokens)
	ascii  [128]int32       // id of each one-byte char, -1 if absent

	merges mergeTable // (left id, right id) -> rank and merged id

	byteFallback bool
	byteIDs      [256]int32 // id of <0xNN>, -1 if absent
	unk          int32      // unknown token id for the BPE model, -1 if none
	fuseUnk      bool

	added      []addedToken // matched in raw text before normalization
	addedFirst [256]bool    // first bytes of added tokens

	// Normalization and pre-tokenization.
	norm      []normStep // applied in order to each piece of text
	meta      *metaspace // optional Metaspace pre-tokenizer
	marker    string     // word-start marker ("▁") used to split words
	splitSafe bool       // no merge crosses a "non-marker | marker" boundary

	// Decoder: Replace(from -> to), ByteFallback, Fuse, Strip(strip, stripN, 0).
	decFrom, decTo string
	decBytes       bool
	strip          string
	stripN         int
	decoded        []string // id -> piece after Replace
	byteOf         []int16  // id -> byte value of a <0xNN> piece, -1 otherwise

	bos, eos, unkID int
	addBOS, addEOS  bool

	cache cache
}

// Options select how a tokenizer.json is interpreted.
type Options struct {
	// FilePipeline follows the normalizer, pre-tokenizer and decoder written
	// in tokenizer.json (the tokenizers library), even when
	// tokenizer_config.json names a Llama tokenizer class, which transformers
	// would rebuild.
	FilePipeline bool
	// CacheWords bounds the word cache (0: the default, 65536; negative: no cache).
	CacheWords int
}

type addedToken struct {
	content string
	id      int
	special bool
}

type normStep struct {
	prepend  string // Prepend: prepend to non-empty text
	from, to string // Replace: every from by to
}

// metaspace is the Metaspace pre-tokenizer: replace ' ' by repl, prepend
// repl according to scheme, optionally split before every repl.
type metaspace struct {
	repl   string
	scheme string // "always", "first" or "never"
	split  bool
}

// Load reads a tokenizer.json (or a directory holding one) and the
// tokenizer_config.json beside it, interpreting them as transformers does.
func Load(path string) (*Tokenizer, error) {
	return LoadWith(path, Options{})
}

// LoadWith is Load with options.
func LoadWith(path string, opt Options) (*Tokenizer, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cfg, err := readConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	t, err := build(&f, cfg, opt)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// BOS returns the beginning-of-sequence id.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence id.
func (t *Tokenizer) EOS() int { return t.eos }

// UNK returns the unknown-token id, -1 if there is none.
func (t *Tokenizer) UNK() int { return t.unkID }

// AddsBOS and AddsEOS report tokenizer_config.json's add_bos_token and
// add_eos_token (defaults true and false).
func (t *Tokenizer) AddsBOS() bool { return t.addBOS }
func (t *Tokenizer) AddsEOS() bool { return t.addEOS }

// VocabSize returns the number of ids, added tokens included.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// Piece returns the vocabulary string of id ("▁Hello", "<0x0A>", "<s>"),
// or "" when id is out of range.
func (t *Tokenizer) Piece(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// ID returns the id of a vocabulary piece or added token.
func (t *Tokenizer) ID(piece string) (int, bool) {
	for _, a := range t.added {
		if a.content == piece {
			return a.id, true
		}
	}
	id, ok := t.vocab[piece]
	return int(id), ok
}

// IsSpecial reports whether id is a special added token (<s>, </s>, <unk>).
func (t *Tokenizer) IsSpecial(id int) bool {
	for _, a := range t.added {
		if a.id == id {
			return a.special
		}
	}
	return false
}

// ---- tokenizer.json ----

type fileJSON struct {
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Decoder       json.RawMessage `json:"decoder"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         modelJSON       `json:"model"`
}

type addedJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int    `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

type stepJSON struct {
	Type          string            `json:"type"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	Decoders      []json.RawMessage `json:"decoders"`
	Prepend       string            `json:"prepend"`
	Pattern       map[string]string `json:"pattern"`
	Content       json.RawMessage   `json:"content"`
	Replacement   string            `json:"replacement"`
	PrependScheme string            `json:"prepend_scheme"`
	AddPrefix     *bool             `json:"add_prefix_space"`
	Split         *bool             `json:"split"`
	Start         int               `json:"start"`
	Stop          int               `json:"stop"`
}

// ---- tokenizer_config.json ----

type config struct {
	present        bool
	class          string
	addBOS, addEOS bool
	legacy         *bool
	addPrefixSpace *bool
	bos, eos, unk  string
}

func readConfig(path string) (*config, error) {
	c := &config{addBOS: true, bos: "<s>", eos: "</s>", unk: "<unk>"}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	c.present = true
	boolField := func(name string, dst **bool) error {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return nil
		}
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return fmt.Errorf("tokenizer: %s: field %s: %w", path, name, err)
		}
		*dst = &b
		return nil
	}
	var addBOS, addEOS *bool
	for name, dst := range map[string]**bool{"add_bos_token": &addBOS, "add_eos_token": &addEOS,
		"legacy": &c.legacy, "add_prefix_space": &c.addPrefixSpace} {
		if err := boolField(name, dst); err != nil {
			return nil, err
		}
	}
	if addBOS != nil {
		c.addBOS = *addBOS
	}
	if addEOS != nil {
		c.addEOS = *addEOS
	}
	// Special tokens are strings or {"content": ...} objects.
	for name, dst := range map[string]*string{"bos_token": &c.bos, "eos_token": &c.eos, "unk_token": &c.unk} {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			var obj struct {
				Content string `json:"content"`
			}
			if err2 := json.Unmarshal(v, &obj); err2 != nil || obj.Content == "" {
				return nil, fmt.Errorf("tokenizer: %s: field %s: want a string or {\"content\": ...}", path, name)
			}
			s = obj.Content
		}
		*dst = s
	}
	if v, ok := raw["tokenizer_class"]; ok {
		_ = json.Unmarshal(v, &c.class)
	}
	return c, nil
}

// llamaClass reports whether transformers rebuilds the pipeline of class.
func llamaClass(class string) bool {
	return class == "LlamaTokenizer" || class == "LlamaTokenizerFast"
}

// ---- building ----

func build(f *fileJSON, cfg *config, opt Options) (*Tokenizer, error) {
	m := &f.Model
	if m.Type != "BPE" {
		return nil, fmt.Errorf("model.type %q: only BPE is supported", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("model.dropout %v: BPE dropout is not supported", *m.Dropout)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, errors.New("model.continuing_subword_prefix is not supported")
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, errors.New("model.end_of_word_suffix is not supported")
	}
	if m.IgnoreMerges {
		return nil, errors.New("model.ignore_merges is not supported")
	}
	if len(m.Vocab) == 0 {
		return nil, errors.New("model.vocab is empty")
	}
	t := &Tokenizer{vocab: make(map[string]int32, len(m.Vocab)), unk: -1, unkID: -1}
	size := 0
	for piece, id := range m.Vocab {
		if id < 0 || id >= 1<<24 {
			return nil, fmt.Errorf("model.vocab[%q] = %d: id out of range", piece, id)
		}
		t.vocab[piece] = int32(id)
		size = max(size, id+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= 1<<24 {
			return nil, fmt.Errorf("added_tokens %q: id %d out of range", a.Content, a.ID)
		}
		size = max(size, a.ID+1)
	}
	t.pieces = make([]string, size)
	for piece, id := range t.vocab {
		t.pieces[id] = piece
	}
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, fmt.Errorf("added_tokens id %d: empty content", a.ID)
		}
		if a.Normalized || a.LStrip || a.RStrip || a.SingleWord {
			return nil, fmt.Errorf("added_tokens %q: normalized, lstrip, rstrip and single_word are not supported", a.Content)
		}
		t.pieces[a.ID] = a.Content
		t.added = append(t.added, addedToken{a.Content, a.ID, a.Special})
		t.addedFirst[a.Content[0]] = true
	}
	for i := range t.ascii {
		t.ascii[i] = -1
		if id, ok := t.vocab[string(rune(i))]; ok {
			t.ascii[i] = id
		}
	}
	t.byteFallback = m.ByteFallback
	for b := range t.byteIDs {
		t.byteIDs[b] = -1
		if id, ok := t.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			t.byteIDs[b] = id
		}
	}
	t.fuseUnk = m.FuseUnk
	if m.UnkToken != nil {
		id, ok := t.vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model.unk_token %q is not in model.vocab", *m.UnkToken)
		}
		t.unk = id
	}
	if err := t.buildMerges(m.Merges); err != nil {
		return nil, err
	}

	// Special ids and framing from tokenizer_config.json.
	t.addBOS, t.addEOS = cfg.addBOS, cfg.addEOS
	t.bos, t.eos, t.unkID = -1, -1, -1
	if id, ok := t.ID(cfg.bos); ok {
		t.bos = id
	}
	if id, ok := t.ID(cfg.eos); ok {
		t.eos = id
	}
	if id, ok := t.ID(cfg.unk); ok {
		t.unkID = id
	}
	if t.addBOS && t.bos < 0 {
		return nil, fmt.Errorf("tokenizer_config.json: bos_token %q is not in the vocabulary", cfg.bos)
	}

	// Pipeline: transformers' rebuilt Llama pipeline, or the file's own.
	if cfg.present && llamaClass(cfg.class) && !opt.FilePipeline {
		legacy := cfg.legacy != nil && *cfg.legacy // transformers 5 defaults legacy to false
		prefix := cfg.addPrefixSpace == nil || *cfg.addPrefixSpace
		scheme := "never"
		if prefix {
			scheme = "first"
			if legacy {
				scheme = "always"
			}
		}
		t.meta = &metaspace{repl: "▁", scheme: scheme}
		t.decFrom, t.decTo, t.decBytes = "▁", " ", true
		if prefix {
			t.strip, t.stripN = " ", 1
		}
	} else {
		if err := t.parseNormalizer(f.Normalizer); err != nil {
			return nil, err
		}
		if err := t.parsePreTokenizer(f.PreTokenizer); err != nil {
			return nil, err
		}
		if err := t.parseDecoder(f.Decoder); err != nil {
			return nil, err
		}
	}
	t.marker = t.wordMarker()
	t.splitSafe = t.checkSplitSafe()
	t.buildDecodeTables()
	capacity := opt.CacheWords
	if capacity == 0 {
		capacity = 1 << 16
	}
	t.cache.init(capacity)
	return t, nil
}

func (t *Tokenizer) buildMerges(raw []json.RawMessage) error {
	t.merges.init(len(raw))
	for rank, r := range raw {
		var a, b string
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return fmt.Errorf("model.merges[%d] = %q: want two pieces separated by one space", rank, s)
			}
			a, b = parts[0], parts[1]
		} else {
			var pair []string
			if err := json.Unmarshal(r, &pair); err != nil || len(pair) != 2 {
				return fmt.Errorf("model.merges[%d]: want \"a b\" or [\"a\", \"b\"]", rank)
			}
			a, b = pair[0], pair[1]
		}
		ia, ok1 := t.vocab[a]
		ib, ok2 := t.vocab[b]
		im, ok3 := t.vocab[a+b]
		if !ok1 || !ok2 || !ok3 {
			return fmt.Errorf("model.merges[%d] = %q %q: piece not in model.vocab", rank, a, b)
		}
		// A repeated pair keeps its last rank, as the tokenizers library does.
		t.merges.put(ia, ib, int32(rank), im)
	}
	return nil
}

func (t *Tokenizer) parseNormalizer(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s stepJSON
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("normalizer: %w", err)
	}
	switch s.Type {
	case "Sequence":
		for i, r := range s.Normalizers {
			if err := t.parseNormalizer(r); err != nil {
				return fmt.Errorf("normalizers[%d]: %w", i, err)
			}
		}
	case "Prepend":
		t.norm = append(t.norm, normStep{prepend: s.Prepend})
	case "Replace":
		from, ok := s.Pattern["String"]
		var to string
		if !ok || json.Unmarshal(s.Content, &to) != nil {
			return fmt.Errorf("normalizer Replace: only a String pattern and a string content are supported")
		}
		t.norm = append(t.norm, normStep{from: from, to: to})
	default:
		return fmt.Errorf("normalizer type %q is not supported", s.Type)
	}
	return nil
}

func (t *Tokenizer) parsePreTokenizer(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s stepJSON
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	if s.Type != "Metaspace" {
		return fmt.Errorf("pre_tokenizer type %q is not supported", s.Type)
	}
	ms := &metaspace{repl: s.Replacement, scheme: s.PrependScheme, split: s.Split == nil || *s.Split}
	if ms.scheme == "" { // older files: add_prefix_space
		ms.scheme = "always"
		if s.AddPrefix != nil && !*s.AddPrefix {
			ms.scheme = "never"
		}
	}
	if ms.repl == "" || (ms.scheme != "always" && ms.scheme != "first" && ms.scheme != "never") {
		return fmt.Errorf("pre_tokenizer Metaspace: bad replacement %q or prepend_scheme %q", ms.repl, ms.scheme)
	}
	t.meta = ms
	return nil
}

// parseDecoder accepts the Llama decoder: Sequence[Replace(a -> b),
// ByteFallback, Fuse, Strip(c, n, 0)], each step optional but in this order.
func (t *Tokenizer) parseDecoder(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return errors.New("decoder: missing (a Llama tokenizer has Replace, ByteFallback, Fuse, Strip)")
	}
	var s stepJSON
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	steps := []json.RawMessage{raw}
	if s.Type == "Sequence" {
		steps = s.Decoders
	}
	order := 0
	fused := false
	for i, r := range steps {
		var d stepJSON
		if err := json.Unmarshal(r, &d); err != nil {
			return fmt.Errorf("decoders[%d]: %w", i, err)
		}
		var pos int
		switch d.Type {
		case "Replace":
			pos = 1
			from, ok := d.Pattern["String"]
			if !ok || json.Unmarshal(d.Content, &t.decTo) != nil {
				return fmt.Errorf("decoders[%d] Replace: only a String pattern and a string content are supported", i)
			}
			t.decFrom = from
		case "ByteFallback":
			pos = 2
			t.decBytes = true
		case "Fuse":
			pos = 3
			fused = true
		case "Strip":
			pos = 4
			var c string
			if json.Unmarshal(d.Content, &c) != nil || len([]rune(c)) != 1 || d.Stop != 0 {
				return fmt.Errorf("decoders[%d] Strip: only one char content and stop 0 are supported", i)
			}
			t.strip, t.stripN = c, d.Start
		default:
			return fmt.Errorf("decoders[%d]: type %q is not supported", i, d.Type)
		}
		if pos <= order {
			return fmt.Errorf("decoders[%d] %s: steps must come in the order Replace, ByteFallback, Fuse, Strip", i, d.Type)
		}
		order = pos
	}
	if t.stripN > 0 && !fused {
		return errors.New("decoder: Strip without Fuse is not supported")
	}
	return nil
}

// wordMarker is the string that starts words after normalization ("▁"), or
// "" when the pipeline has none.
func (t *Tokenizer) wordMarker() string {
	if t.meta != nil {
		return t.meta.repl
	}
	for _, s := range t.norm {
		if s.from == " " && s.to != "" {
			return s.to
		}
	}
	return ""
}

// checkSplitSafe reports whether BPE over a whole text equals BPE over its
// words, cut before each marker that follows a non-marker char. That holds
// when the marker is a vocabulary piece and no merge joins a left piece not
// ending in the marker to a right piece starting with it: then no merge ever
// spans such a cut, and merges on either side never interact.
func (t *Tokenizer) checkSplitSafe() bool {
	if t.marker == "" {
		return false
	}
	if _, ok := t.vocab[t.marker]; !ok {
		return false
	}
	safe := true
	t.merges.each(func(a, b int32) {
		pa, pb := t.pieces[a], t.pieces[b]
		if strings.HasPrefix(pb, t.marker) && !strings.HasSuffix(pa, t.marker) {
			safe = false
		}
	})
	return safe
}

func (t *Tokenizer) buildDecodeTables() {
	t.decoded = make([]string, len(t.pieces))
	t.byteOf = make([]int16, len(t.pieces))
	for id, p := range t.pieces {
		if t.decFrom != "" {
			p = strings.ReplaceAll(p, t.decFrom, t.decTo)
		}
		t.decoded[id] = p
		t.byteOf[id] = -1
		if t.decBytes && len(p) == 6 && strings.HasPrefix(p, "<0x") && p[5] == '>' {
			if v, err := strconv.ParseUint(p[3:5], 16, 8); err == nil {
				t.byteOf[id] = int16(v)
			}
		}
	}
}

// ---- word cache ----

// cache maps a normalized word to its BPE ids. It stops growing at its
// capacity, as the tokenizers library's cache does.
type cache struct {
	mu    sync.RWMutex
	words map[string][]int32
	limit int
}

func (c *cache) init(limit int) {
	c.limit = limit
	if limit > 0 {
		c.words = make(map[string][]int32, min(limit, 4096))
	}
}

func (c *cache) get(w string) ([]int32, bool) {
	if c.limit <= 0 {
		return nil, false
	}
	c.mu.RLock()
	ids, ok := c.words[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *cache) put(w string, ids []int32) {
	if c.limit <= 0 || len(w) > 256 {
		return
	}
	c.mu.Lock()
	if len(c.words) < c.limit {
		c.words[strings.Clone(w)] = append([]int32(nil), ids...)
	}
	c.mu.Unlock()
}
