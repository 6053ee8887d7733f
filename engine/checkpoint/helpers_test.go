package checkpoint_test

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/gomega"
)

// tiny is the folder of the fixtures that reference/make_tiny.py wrote.
const tiny = "../../testdata/tiny"

// rewriteZip copies a zip archive, passing every record through edit (which
// may return nil to drop it), and stores records uncompressed as torch does.
func rewriteZip(src []byte, edit func(name string, data []byte) []byte) []byte {
	zr, err := zip.NewReader(bytes.NewReader(src), int64(len(src)))
	Expect(err).NotTo(HaveOccurred())
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		Expect(err).NotTo(HaveOccurred())
		data, err := io.ReadAll(rc)
		Expect(err).NotTo(HaveOccurred())
		rc.Close()
		if data = edit(f.Name, data); data == nil {
			continue
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Store})
		Expect(err).NotTo(HaveOccurred())
		_, err = w.Write(data)
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(zw.Close()).To(Succeed())
	return out.Bytes()
}

// editPickle rewrites only the data.pkl record of a torch zip.
func editPickle(src []byte, edit func([]byte) []byte) []byte {
	return rewriteZip(src, func(name string, data []byte) []byte {
		if strings.HasSuffix(name, "/data.pkl") {
			return edit(data)
		}
		return data
	})
}

// copyDir copies the regular files of a folder into a new temporary folder.
func copyDir(src, dst string) {
	Expect(os.MkdirAll(dst, 0o755)).To(Succeed())
	ents, err := os.ReadDir(src)
	Expect(err).NotTo(HaveOccurred())
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)).To(Succeed())
	}
}
