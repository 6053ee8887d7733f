package safetensors

import (
	"encoding/binary"
	"os"
	"testing"
)

// FuzzSafetensorsHeader feeds arbitrary images to Parse. It must never
// panic, and every tensor it accepts must lie inside the data section and
// decode to as many values as its shape holds.
func FuzzSafetensorsHeader(f *testing.F) {
	if b, err := os.ReadFile("../../testdata/tiny/llama-gqa/adapters/layer1/adapter_model.safetensors"); err == nil {
		f.Add(b)
	}
	img := func(h string, n int) []byte {
		out := make([]byte, 8)
		binary.LittleEndian.PutUint64(out, uint64(len(h)))
		return append(append(out, h...), make([]byte, n)...)
	}
	f.Add(img(`{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}`, 8))
	f.Add(img(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[0],"data_offsets":[4,4]}}`, 4))
	f.Fuzz(func(t *testing.T, buf []byte) {
		sf, err := Parse("fuzz", buf)
		if err != nil {
			return
		}
		for _, ti := range sf.Tensors() {
			raw, _, err := sf.Bytes(ti.Name)
			if err != nil || int64(len(raw)) != ti.End-ti.Begin {
				t.Fatalf("%s: %d bytes for [%d,%d): %v", ti.Name, len(raw), ti.Begin, ti.End, err)
			}
			if ti.DType.IsFloat() {
				v, _, err := sf.Float32(ti.Name)
				if err != nil || len(v) != ti.NumElements() {
					t.Fatalf("%s: %d values for shape %v: %v", ti.Name, len(v), ti.Shape, err)
				}
			}
		}
	})
}
