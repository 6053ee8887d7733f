// Package safetensors reads and writes the safetensors format.
//
// Open memory-maps the file, so tensors are views into the page cache and a
// large checkpoint never sits in the Go heap twice. Every structural problem
// (a header that runs past the end, offsets out of range or overlapping, a
// dtype and shape that disagree with the byte count) is returned as an error
// that names the file and the tensor; Open never panics on a bad file.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"loramix/engine/dtype"
)

// maxHeader bounds the JSON header so a corrupt length cannot make us
// allocate gigabytes (the reference implementation uses 100 MB too).
const maxHeader = 100 << 20

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType dtype.DType
	Shape []int
	// Begin and End are byte offsets into the data section.
	Begin, End int64
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open, memory-mapped safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	tensors  map[string]TensorInfo
	mapped   []byte // the whole file
	data     []byte // the data section, a sub-slice of mapped
}

type rawEntry struct {
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// Open memory-maps path and validates its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors %s: file is %d bytes, too short for a header", path, size)
	}
	mapped, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: mmap: %w", path, err)
	}
	sf, err := parse(path, mapped)
	if err != nil {
		unix.Munmap(mapped)
		return nil, err
	}
	return sf, nil
}

// Parse validates an in-memory safetensors image. The returned File refers
// to buf; Close on it is a no-op.
func Parse(name string, buf []byte) (*File, error) {
	if len(buf) < 8 {
		return nil, fmt.Errorf("safetensors %s: %d bytes, too short for a header", name, len(buf))
	}
	f, err := parse(name, buf)
	if err != nil {
		return nil, err
	}
	f.mapped = nil
	return f, nil
}

func parse(path string, buf []byte) (*File, error) {
	hlen := binary.LittleEndian.Uint64(buf[:8])
	if hlen > maxHeader || hlen > uint64(len(buf)-8) {
		return nil, fmt.Errorf("safetensors %s: header length %d runs past the end of the file (%d bytes)", path, hlen, len(buf))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+hlen], &raw); err != nil {
		return nil, fmt.Errorf("safetensors %s: header is not valid JSON: %v", path, err)
	}
	f := &File{Path: path, tensors: map[string]TensorInfo{}, mapped: buf, data: buf[8+hlen:]}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors %s: __metadata__ must map strings to strings: %v", path, err)
			}
			continue
		}
		var e rawEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("safetensors %s: tensor %q: bad header entry: %v", path, name, err)
		}
		ti, err := f.check(name, e)
		if err != nil {
			return nil, err
		}
		f.tensors[name] = ti
	}
	// Offsets must not overlap (sorted by begin, each must end before the next begins).
	infos := f.Tensors()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Begin < infos[j].Begin })
	for i := 1; i < len(infos); i++ {
		if infos[i].Begin < infos[i-1].End {
			return nil, fmt.Errorf("safetensors %s: tensor %q [%d,%d) overlaps tensor %q [%d,%d)", path,
				infos[i].Name, infos[i].Begin, infos[i].End, infos[i-1].Name, infos[i-1].Begin, infos[i-1].End)
		}
	}
	return f, nil
}

func (f *File) check(name string, e rawEntry) (TensorInfo, error) {
	d := dtype.DType(e.DType)
	if d.Size() == 0 {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: unsupported dtype %q", f.Path, name, e.DType)
	}
	if len(e.Offsets) != 2 {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: data_offsets must have 2 entries, has %d", f.Path, name, len(e.Offsets))
	}
	b, end := e.Offsets[0], e.Offsets[1]
	if b < 0 || end < b || end > int64(len(f.data)) {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: offsets [%d,%d) out of range of the %d-byte data section", f.Path, name, b, end, len(f.data))
	}
	n := int64(1)
	shape := make([]int, len(e.Shape))
	for i, s := range e.Shape {
		if s < 0 || (s > 0 && n > math.MaxInt64/int64(d.Size())/s) {
			return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: bad shape %v", f.Path, name, e.Shape)
		}
		n *= s
		shape[i] = int(s)
	}
	if n*int64(d.Size()) != end-b {
		return TensorInfo{}, fmt.Errorf("safetensors %s: tensor %q: dtype %s and shape %v need %d bytes, offsets give %d", f.Path, name, d, e.Shape, n*int64(d.Size()), end-b)
	}
	return TensorInfo{Name: name, DType: d, Shape: shape, Begin: b, End: end}, nil
}

// Tensors lists the tensors, sorted by name.
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, 0, len(f.tensors))
	for _, t := range f.tensors {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Info returns the description of a tensor and whether it exists.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Bytes returns the raw little-endian bytes of a tensor. The slice aliases
// the mapping: it is read-only and valid until Close.
func (f *File) Bytes(name string) ([]byte, TensorInfo, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, TensorInfo{}, fmt.Errorf("safetensors %s: no tensor %q", f.Path, name)
	}
	return f.data[t.Begin:t.End], t, nil
}

// Float32 decodes a float tensor (F32, F16, BF16 or F64) into a new slice.
func (f *File) Float32(name string) ([]float32, TensorInfo, error) {
	raw, t, err := f.Bytes(name)
	if err != nil {
		return nil, t, err
	}
	out := make([]float32, t.NumElements())
	if err := dtype.ToFloat32(out, raw, t.DType); err != nil {
		return nil, t, fmt.Errorf("safetensors %s: tensor %q: %v", f.Path, name, err)
	}
	return out, t, nil
}

// Close unmaps the file. Slices returned by Bytes are invalid afterwards.
func (f *File) Close() error {
	if f.mapped == nil {
		return nil
	}
	err := unix.Munmap(f.mapped)
	f.mapped, f.data = nil, nil
	return err
}

// Tensor is one tensor to write.
type Tensor struct {
	Name  string
	DType dtype.DType
	Shape []int
	Data  []byte // little-endian, len = product(Shape) * DType.Size()
}

// Encode serializes tensors (written in name order) and metadata.
func Encode(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range sorted {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n*t.DType.Size() != len(t.Data) {
			return nil, fmt.Errorf("safetensors: tensor %q: shape %v of %s needs %d bytes, got %d", t.Name, t.Shape, t.DType, n*t.DType.Size(), len(t.Data))
		}
		header[t.Name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	for len(hj)%8 != 0 { // align the data section, as the reference writer does
		hj = append(hj, ' ')
	}
	out := make([]byte, 8, 8+len(hj)+int(off))
	binary.LittleEndian.PutUint64(out, uint64(len(hj)))
	out = append(out, hj...)
	for _, t := range sorted {
		out = append(out, t.Data...)
	}
	return out, nil
}

// Write writes tensors to path atomically: to a temporary file in the same
// folder, then renamed over path, so a failure never leaves a half-written file.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	buf, err := Encode(tensors, metadata)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return WriteFileAtomic(path, buf)
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(name)
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(name)
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Chmod(name, 0o644); err != nil {
		os.Remove(name)
		return err
	}
	return os.Rename(name, path)
}
