package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"loramix/engine/dtype"
	"loramix/engine/safetensors"
)

// TensorInfo describes one stored tensor.
type TensorInfo struct {
	Name  string
	DType dtype.DType
	Shape []int
	File  string // the file that holds it
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Weights is a read-only set of named tensors, however they are stored.
// It is what the engine consumes.
type Weights interface {
	// Names lists the tensor names, sorted.
	Names() []string
	// Info describes a tensor and reports whether it exists.
	Info(name string) (TensorInfo, bool)
	// Float32 decodes a float tensor (F32, F16 or BF16) into a new
	// row-major slice and returns it with its shape.
	Float32(name string) ([]float32, []int, error)
	// Source names where the tensors come from, for messages.
	Source() string
	// Close releases the files; slices from Raw are invalid afterwards.
	Close() error
}

// RawWeights is implemented by Weights whose tensors are stored contiguous
// and little-endian (safetensors): Raw returns the stored bytes without
// copying. The slice aliases a read-only mapping valid until Close.
type RawWeights interface {
	Raw(name string) ([]byte, TensorInfo, error)
}

// The file names transformers writes, in the order it looks for them.
const (
	SafetensorsFile  = "model.safetensors"
	SafetensorsIndex = "model.safetensors.index.json"
	BinFile          = "pytorch_model.bin"
	BinIndex         = "pytorch_model.bin.index.json"
)

// OpenWeights opens the weights of the checkpoint folder dir: the first of
// model.safetensors, model.safetensors.index.json (with its shards),
// pytorch_model.bin and pytorch_model.bin.index.json that exists.
func OpenWeights(dir string) (Weights, error) {
	for _, name := range []string{SafetensorsFile, SafetensorsIndex, BinFile, BinIndex} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		if strings.HasSuffix(name, ".index.json") {
			return OpenIndex(path)
		}
		return OpenFile(path)
	}
	return nil, fmt.Errorf("checkpoint %s: no weights (looked for %s, %s, %s, %s)", dir, SafetensorsFile, SafetensorsIndex, BinFile, BinIndex)
}

// OpenFile opens one weights file: safetensors, or a PyTorch zip pickle
// for names ending in .bin, .pt or .pth.
func OpenFile(path string) (Weights, error) {
	switch filepath.Ext(path) {
	case ".bin", ".pt", ".pth":
		return OpenPickle(path)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	return &stWeights{f}, nil
}

// stWeights is one memory-mapped safetensors file.
type stWeights struct{ f *safetensors.File }

func (w *stWeights) Names() []string {
	ts := w.f.Tensors()
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return names
}

func (w *stWeights) Info(name string) (TensorInfo, bool) {
	t, ok := w.f.Info(name)
	if !ok {
		return TensorInfo{}, false
	}
	return TensorInfo{Name: name, DType: t.DType, Shape: t.Shape, File: w.f.Path}, true
}

func (w *stWeights) Float32(name string) ([]float32, []int, error) {
	v, t, err := w.f.Float32(name)
	if err != nil {
		return nil, nil, err
	}
	return v, t.Shape, nil
}

func (w *stWeights) Raw(name string) ([]byte, TensorInfo, error) {
	b, t, err := w.f.Bytes(name)
	if err != nil {
		return nil, TensorInfo{}, err
	}
	return b, TensorInfo{Name: name, DType: t.DType, Shape: t.Shape, File: w.f.Path}, nil
}

func (w *stWeights) Source() string { return w.f.Path }
func (w *stWeights) Close() error   { return w.f.Close() }

// multiWeights joins the shards of a checkpoint.
type multiWeights struct {
	source string
	shards []Weights
	where  map[string]Weights // tensor name -> its shard
}

type indexJSON struct {
	WeightMap map[string]string `json:"weight_map"`
}

// OpenIndex opens the shards that an index (model.safetensors.index.json or
// pytorch_model.bin.index.json) lists. Every tensor of the weight_map must be
// in the shard it names, and no tensor may be in two shards.
func OpenIndex(path string) (Weights, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint index: %w", err)
	}
	var idx indexJSON
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("checkpoint index %s: not valid JSON: %v", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("checkpoint index %s: weight_map is empty", path)
	}
	dir := filepath.Dir(path)
	byShard := map[string][]string{} // shard file -> tensors the index puts there
	for tensor, shard := range idx.WeightMap {
		if shard == "" || filepath.Base(shard) != shard || shard == "." || shard == ".." {
			return nil, fmt.Errorf("checkpoint index %s: tensor %q: shard name %q is not a file name in the folder", path, tensor, shard)
		}
		byShard[shard] = append(byShard[shard], tensor)
	}
	shardNames := make([]string, 0, len(byShard))
	for s := range byShard {
		shardNames = append(shardNames, s)
		sort.Strings(byShard[s])
	}
	sort.Strings(shardNames)
	m := &multiWeights{source: path, where: map[string]Weights{}}
	for _, s := range shardNames {
		sp := filepath.Join(dir, s)
		w, err := OpenFile(sp)
		if err != nil {
			m.Close()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("checkpoint index %s: shard %s (holding tensor %q and %d more) is missing", path, sp, byShard[s][0], len(byShard[s])-1)
			}
			return nil, fmt.Errorf("checkpoint index %s: shard %s: %w", path, s, err)
		}
		m.shards = append(m.shards, w)
		for _, t := range byShard[s] {
			if _, ok := w.Info(t); !ok {
				m.Close()
				return nil, fmt.Errorf("checkpoint index %s: tensor %q should be in shard %s, which does not hold it", path, t, sp)
			}
		}
		for _, t := range w.Names() {
			if prev, dup := m.where[t]; dup {
				m.Close()
				return nil, fmt.Errorf("checkpoint index %s: tensor %q is in both %s and %s", path, t, prev.Source(), sp)
			}
			m.where[t] = w
		}
	}
	return m, nil
}

func (m *multiWeights) Names() []string {
	names := make([]string, 0, len(m.where))
	for n := range m.where {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (m *multiWeights) Info(name string) (TensorInfo, bool) {
	w, ok := m.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	return w.Info(name)
}

func (m *multiWeights) Float32(name string) ([]float32, []int, error) {
	w, ok := m.where[name]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no tensor %q", m.source, name)
	}
	return w.Float32(name)
}

func (m *multiWeights) Raw(name string) ([]byte, TensorInfo, error) {
	w, ok := m.where[name]
	if !ok {
		return nil, TensorInfo{}, fmt.Errorf("%s: no tensor %q", m.source, name)
	}
	r, ok := w.(RawWeights)
	if !ok {
		return nil, TensorInfo{}, fmt.Errorf("%s: tensor %q is not stored raw", w.Source(), name)
	}
	return r.Raw(name)
}

func (m *multiWeights) Source() string { return m.source }

func (m *multiWeights) Close() error {
	var first error
	for _, w := range m.shards {
		if err := w.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.shards, m.where = nil, nil
	return first
}
