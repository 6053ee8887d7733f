// Package tokenizertest makes small tokenizer files for tests, in the way
// net/http/httptest serves tests of net/http.
package tokenizertest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ByteLevelSize is the vocabulary size of WriteByteLevel's tokenizer.
const ByteLevelSize = 260

// WriteByteLevel writes dir/tokenizer.json: a Llama-kind BPE tokenizer with
// no merges, whose vocabulary is <unk>, <s>, </s>, "▁" and the 256
// byte-fallback tokens (ByteLevelSize in all), so any text encodes into ids
// that fit a tiny test checkpoint's vocabulary. It returns the file's path.
func WriteByteLevel(dir string) (string, error) {
	vocab := map[string]any{"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3}
	for b := 0; b < 256; b++ {
		vocab[fmt.Sprintf("<0x%02X>", b)] = 4 + b
	}
	tok := map[string]any{
		"version": "1.0",
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<unk>", "special": true},
			map[string]any{"id": 1, "content": "<s>", "special": true},
			map[string]any{"id": 2, "content": "</s>", "special": true},
		},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		}},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		"model": map[string]any{"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
			"vocab": vocab, "merges": []any{}},
	}
	data, err := json.Marshal(tok)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tokenizer.json")
	return path, os.WriteFile(path, data, 0o644)
}
