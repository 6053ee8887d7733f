package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
	"golang.org/x/sys/unix"

	"loramix/engine/dtype"
)

// maxPickle bounds data.pkl, the pickled structure of a state dict (its
// tensors' bytes are separate records); real ones are a few hundred KB.
const maxPickle = 64 << 20

// OpenPickle opens a PyTorch checkpoint written by torch.save in its zip
// format (pytorch_model.bin, adapter_model.bin) that holds a dict of
// tensors. The pickle may only name tensor-rebuilding functions, F32, F16
// and BF16 storages and OrderedDict; any other global is refused, so a
// hostile file cannot make us do more than build tensors. The file is
// memory-mapped; tensors are decoded on each Float32 call.
func OpenPickle(path string) (Weights, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pickle: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pickle %s: %w", path, err)
	}
	if st.Size() < 22 { // the smallest zip archive
		return nil, fmt.Errorf("pickle %s: %d bytes is too short for a zip archive", path, st.Size())
	}
	mapped, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("pickle %s: mmap: %w", path, err)
	}
	w, err := ParsePickle(path, mapped)
	if err != nil {
		unix.Munmap(mapped)
		return nil, err
	}
	w.mapped = mapped
	return w, nil
}

// PickleWeights is a PyTorch zip checkpoint; see OpenPickle.
type PickleWeights struct {
	path    string
	tensors map[string]pickleTensor
	mapped  []byte // nil when parsed from memory
}

type pickleTensor struct {
	info   TensorInfo
	data   []byte // the whole storage, a sub-slice of the file
	offset int    // in elements
	stride []int  // in elements
}

// ParsePickle reads a PyTorch zip checkpoint held in buf; name is used in
// errors. The returned weights refer to buf.
func ParsePickle(name string, buf []byte) (*PickleWeights, error) {
	zr, err := zip.NewReader(bytes.NewReader(buf), int64(len(buf)))
	if err != nil {
		return nil, fmt.Errorf("pickle %s: not a PyTorch zip archive (legacy torch.save files are not supported): %v", name, err)
	}
	var pkl *zip.File
	records := map[string]*zip.File{}
	for _, r := range zr.File {
		records[r.Name] = r
		if strings.HasSuffix(r.Name, "/data.pkl") && strings.Count(r.Name, "/") == 1 || r.Name == "data.pkl" {
			if pkl != nil {
				return nil, fmt.Errorf("pickle %s: two data.pkl records (%s, %s)", name, pkl.Name, r.Name)
			}
			pkl = r
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("pickle %s: no data.pkl record; not a torch.save archive", name)
	}
	prefix := strings.TrimSuffix(pkl.Name, "data.pkl")
	if _, ok := records[prefix+"constants.pkl"]; ok {
		return nil, fmt.Errorf("pickle %s: a TorchScript archive, not a state dict", name)
	}
	if pkl.UncompressedSize64 > maxPickle {
		return nil, fmt.Errorf("pickle %s: %s is %d bytes, more than a state dict needs", name, pkl.Name, pkl.UncompressedSize64)
	}
	rc, err := pkl.Open()
	if err != nil {
		return nil, fmt.Errorf("pickle %s: %s: %v", name, pkl.Name, err)
	}
	text, err := io.ReadAll(io.LimitReader(rc, maxPickle))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("pickle %s: reading %s: %v", name, pkl.Name, err)
	}
	refs, err := decodeStateDict(text)
	if err != nil {
		return nil, fmt.Errorf("pickle %s: %v", name, err)
	}
	w := &PickleWeights{path: name, tensors: map[string]pickleTensor{}}
	for tname, ref := range refs {
		t, err := ref.resolve(buf, records, prefix)
		if err != nil {
			return nil, fmt.Errorf("pickle %s: tensor %q: %v", name, tname, err)
		}
		t.info.Name, t.info.File = tname, name
		w.tensors[tname] = t
	}
	return w, nil
}

// resolve finds the storage record of a tensor and checks the view fits in it.
func (ref *tensorRef) resolve(buf []byte, records map[string]*zip.File, prefix string) (pickleTensor, error) {
	st := ref.storage
	rec, ok := records[prefix+"data/"+st.key]
	if !ok {
		return pickleTensor{}, fmt.Errorf("storage record data/%s is missing", st.key)
	}
	if rec.Method != zip.Store {
		return pickleTensor{}, fmt.Errorf("storage data/%s is compressed; torch.save stores storages uncompressed", st.key)
	}
	off, err := rec.DataOffset()
	if err != nil {
		return pickleTensor{}, fmt.Errorf("storage data/%s: %v", st.key, err)
	}
	size := int64(rec.UncompressedSize64)
	if rec.UncompressedSize64 != rec.CompressedSize64 || size < 0 || off < 0 || off > int64(len(buf)) || size > int64(len(buf))-off {
		return pickleTensor{}, fmt.Errorf("storage data/%s: %d bytes at offset %d run past the end of the %d-byte file", st.key, size, off, len(buf))
	}
	esz := int64(st.dt.Size())
	if int64(st.numel) > size/esz || int64(st.numel)*esz != size {
		return pickleTensor{}, fmt.Errorf("storage data/%s holds %d bytes, but the pickle says %d elements of %s", st.key, size, st.numel, st.dt)
	}
	// The view may not hold more elements than its storage (no saved state
	// dict expands a tensor), and its last element must be inside the storage.
	if n := numel(ref.shape); n > int64(st.numel) {
		return pickleTensor{}, fmt.Errorf("view of shape %v has %d elements, more than its %d-element storage", ref.shape, n, st.numel)
	}
	last, empty := int64(ref.offset), false
	for i, d := range ref.shape {
		if d == 0 {
			empty = true
		}
		last += int64(d-1) * int64(ref.stride[i])
	}
	if !empty && (ref.offset < 0 || last >= int64(st.numel)) {
		return pickleTensor{}, fmt.Errorf("view (offset %d, shape %v, stride %v) reaches element %d of a %d-element storage", ref.offset, ref.shape, ref.stride, last, st.numel)
	}
	return pickleTensor{
		info:   TensorInfo{DType: st.dt, Shape: ref.shape},
		data:   buf[off : off+size],
		offset: ref.offset,
		stride: ref.stride,
	}, nil
}

// Names lists the tensor names, sorted.
func (w *PickleWeights) Names() []string {
	names := make([]string, 0, len(w.tensors))
	for n := range w.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Info describes a tensor.
func (w *PickleWeights) Info(name string) (TensorInfo, bool) {
	t, ok := w.tensors[name]
	return t.info, ok
}

// Float32 decodes a tensor, following its strides, into a new row-major slice.
func (w *PickleWeights) Float32(name string) ([]float32, []int, error) {
	t, ok := w.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("pickle %s: no tensor %q", w.path, name)
	}
	n := t.info.NumElements()
	out := make([]float32, n)
	if n == 0 {
		return out, t.info.Shape, nil
	}
	esz := t.info.DType.Size()
	if isContiguous(t.info.Shape, t.stride) {
		raw := t.data[t.offset*esz : (t.offset+n)*esz]
		if err := dtype.ToFloat32(out, raw, t.info.DType); err != nil {
			return nil, nil, fmt.Errorf("pickle %s: tensor %q: %v", w.path, name, err)
		}
		return out, t.info.Shape, nil
	}
	// Strided view: walk the indices in row-major order.
	idx := make([]int, len(t.info.Shape))
	one := make([]float32, 1)
	for i := range out {
		e := t.offset
		for d, k := range idx {
			e += k * t.stride[d]
		}
		if err := dtype.ToFloat32(one, t.data[e*esz:(e+1)*esz], t.info.DType); err != nil {
			return nil, nil, fmt.Errorf("pickle %s: tensor %q: %v", w.path, name, err)
		}
		out[i] = one[0]
		for d := len(idx) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < t.info.Shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, t.info.Shape, nil
}

func isContiguous(shape, stride []int) bool {
	want := 1
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// Source returns the file name.
func (w *PickleWeights) Source() string { return w.path }

// Close unmaps the file.
func (w *PickleWeights) Close() error {
	if w.mapped == nil {
		return nil
	}
	err := unix.Munmap(w.mapped)
	w.mapped, w.tensors = nil, nil
	return err
}

// storageRef is a persistent id of the pickle: a storage record of the archive.
type storageRef struct {
	key   string
	dt    dtype.DType
	numel int
}

// tensorRef is what torch._utils._rebuild_tensor_v2 would build: a view of a storage.
type tensorRef struct {
	storage       *storageRef
	offset        int
	shape, stride []int
}

// storageClass stands for torch.FloatStorage and its kin.
type storageClass struct{ dt dtype.DType }

var storageClasses = map[string]dtype.DType{
	"FloatStorage": dtype.F32, "HalfStorage": dtype.F16, "BFloat16Storage": dtype.BF16,
}

// rebuildTensor stands for torch._utils._rebuild_tensor_v2 (and the older
// _rebuild_tensor): (storage, offset, size, stride, ...) -> tensor.
type rebuildTensor struct{}

func (rebuildTensor) Call(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 called with %d arguments, want at least 4", len(args))
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: first argument is %T, not a storage", args[0])
	}
	off, ok := args[1].(int)
	if !ok || off < 0 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: bad storage offset %v", args[1])
	}
	shape, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(shape) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor_v2: size %v and stride %v differ in length", shape, stride)
	}
	if numel(shape) > 1<<50 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: size %v is too large", shape)
	}
	return &tensorRef{storage: st, offset: off, shape: shape, stride: stride}, nil
}

// rebuildParameter stands for torch._utils._rebuild_parameter: it returns its tensor.
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("_rebuild_parameter called without a tensor")
	}
	if t, ok := args[0].(*tensorRef); ok {
		return t, nil
	}
	return nil, fmt.Errorf("_rebuild_parameter: argument is %T, not a tensor", args[0])
}

// numel returns the product of a shape, saturating at 1<<62.
func numel(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		if d == 0 {
			return 0
		}
		if n > (1<<62)/int64(d) {
			n = 1 << 62
			continue
		}
		n *= int64(d)
	}
	return n
}

func intTuple(v any, what string) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: %s is %T, not a tuple", what, v)
	}
	out := make([]int, t.Len())
	for i := range out {
		x, ok := t.Get(i).(int)
		if !ok || x < 0 || x > 1<<40 {
			return nil, fmt.Errorf("_rebuild_tensor_v2: %s %v has a bad entry", what, *t)
		}
		out[i] = x
	}
	return out, nil
}

// findClass allows only what a state dict of tensors needs.
func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, nil
	case "collections.OrderedDict":
		return &types.OrderedDictClass{}, nil
	}
	if module == "torch" {
		if dt, ok := storageClasses[name]; ok {
			return &storageClass{dt}, nil
		}
		if strings.HasSuffix(name, "Storage") {
			return nil, fmt.Errorf("storage type torch.%s is not supported (only F32, F16 and BF16)", name)
		}
	}
	return nil, fmt.Errorf("global %s.%s is not allowed in a weights file (only tensor storages)", module, name)
}

// persistentLoad turns ('storage', class, key, location, numel) into a storageRef.
func persistentLoad(pid any) (any, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || t.Len() < 5 {
		return nil, fmt.Errorf("persistent id %v is not a storage tuple", pid)
	}
	if s, _ := t.Get(0).(string); s != "storage" {
		return nil, fmt.Errorf("persistent id of type %v, want 'storage'", t.Get(0))
	}
	cls, ok1 := t.Get(1).(*storageClass)
	key, ok2 := t.Get(2).(string)
	numel, ok3 := t.Get(4).(int)
	if !ok1 || !ok2 || !ok3 || numel < 0 || strings.Contains(key, "/") {
		return nil, fmt.Errorf("malformed storage id %v", *t)
	}
	return &storageRef{key: key, dt: cls.dt, numel: numel}, nil
}

// decodeStateDict unpickles data.pkl into tensor views by name. It never
// panics: the opcodes are checked first so that no length in the stream
// exceeds the stream, and a panic inside the unpickler becomes an error.
func decodeStateDict(text []byte) (refs map[string]*tensorRef, err error) {
	if err := scanPickle(text); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			refs, err = nil, fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(text))
	u.FindClass = findClass
	u.PersistentLoad = persistentLoad
	v, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("malformed pickle: %v", err)
	}
	refs = map[string]*tensorRef{}
	add := func(k, v any) error {
		name, ok := k.(string)
		if !ok {
			return fmt.Errorf("state dict key %v is not a string", k)
		}
		t, ok := v.(*tensorRef)
		if !ok {
			return fmt.Errorf("state dict entry %q is a %T, not a tensor", name, v)
		}
		if _, dup := refs[name]; dup {
			return fmt.Errorf("state dict has %q twice", name)
		}
		refs[name] = t
		return nil
	}
	switch d := v.(type) {
	case *types.Dict:
		for _, e := range *d {
			if err := add(e.Key, e.Value); err != nil {
				return nil, err
			}
		}
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe := e.Value.(*types.OrderedDictEntry)
			if err := add(oe.Key, oe.Value); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("pickle holds a %T, not a dict of tensors", v)
	}
	return refs, nil
}

// scanPickle walks the opcodes of a pickle and checks that every argument
// lies inside the stream, so the unpickler never allocates more than the
// stream's size for one argument. It stops at STOP.
func scanPickle(b []byte) error {
	i := 0
	need := func(n uint64, op byte) error {
		if n > uint64(len(b)-i) {
			return fmt.Errorf("malformed pickle: opcode 0x%02x at byte %d wants %d bytes, %d remain", op, i-1, n, len(b)-i)
		}
		i += int(n)
		return nil
	}
	line := func(op byte) error {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return fmt.Errorf("malformed pickle: opcode 0x%02x at byte %d has no line end", op, i-1)
		}
		i += j + 1
		return nil
	}
	for i < len(b) {
		op := b[i]
		i++
		var err error
		switch op {
		case '.': // STOP
			return nil
		case '(', '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
		case 'K', 'q', 'h', 0x80, 0x82: // one-byte argument
			err = need(1, op)
		case 'M', 0x83:
			err = need(2, op)
		case 'J', 'r', 'j', 0x84:
			err = need(4, op)
		case 'G':
			err = need(8, op)
		case 0x95: // FRAME: an 8-byte length of what follows
			if err = need(8, op); err == nil {
				n := binary.LittleEndian.Uint64(b[i-8:])
				if n > uint64(len(b)-i) {
					err = fmt.Errorf("malformed pickle: frame of %d bytes at byte %d, %d remain", n, i-9, len(b)-i)
				}
			}
		case 'I', 'L', 'F', 'S', 'V', 'P', 'g', 'p':
			err = line(op)
		case 'c', 'i':
			if err = line(op); err == nil {
				err = line(op)
			}
		case 'U', 'C', 0x8c, 0x8a: // one-byte length, then data
			if err = need(1, op); err == nil {
				err = need(uint64(b[i-1]), op)
			}
		case 'T', 'B', 'X', 0x8b: // four-byte length, then data
			if err = need(4, op); err == nil {
				err = need(uint64(binary.LittleEndian.Uint32(b[i-4:])), op)
			}
		case 0x8d, 0x8e, 0x96: // eight-byte length, then data
			if err = need(8, op); err == nil {
				err = need(binary.LittleEndian.Uint64(b[i-8:]), op)
			}
		default:
			return fmt.Errorf("malformed pickle: unknown opcode 0x%02x at byte %d", op, i-1)
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("malformed pickle: no STOP opcode")
}
