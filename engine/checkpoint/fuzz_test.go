package checkpoint

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPickle feeds arbitrary data.pkl streams to the state-dict reader,
// resolved against the storages of the tiny bin checkpoint. It must never
// panic, and whatever it accepts must decode within its storages.
func FuzzPickle(f *testing.F) {
	buf, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tiny", "formats", "gqa-bin", "pytorch_model.bin"))
	if err != nil {
		f.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf), int64(len(buf)))
	if err != nil {
		f.Fatal(err)
	}
	records := map[string]*zip.File{}
	for _, r := range zr.File {
		records[r.Name] = r
		if strings.HasSuffix(r.Name, "/data.pkl") {
			rc, _ := r.Open()
			seed, _ := io.ReadAll(rc)
			rc.Close()
			f.Add(seed)
		}
	}
	f.Add([]byte("\x80\x02}q\x00."))
	f.Add([]byte("\x80\x02ccollections\nOrderedDict\n)R}X\x09\x00\x00\x00_metadata}sb."))
	f.Add([]byte("\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s."))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		refs, err := decodeStateDict(pkl)
		if err != nil {
			return
		}
		w := &PickleWeights{path: "fuzz.bin", tensors: map[string]pickleTensor{}}
		for name, ref := range refs {
			pt, err := ref.resolve(buf, records, "pytorch_model/")
			if err != nil {
				continue
			}
			pt.info.Name = name
			w.tensors[name] = pt
		}
		for _, name := range w.Names() {
			v, shape, err := w.Float32(name)
			if err == nil && len(v) != w.tensors[name].info.NumElements() {
				t.Fatalf("%s: %d values for shape %v", name, len(v), shape)
			}
		}
	})
}
