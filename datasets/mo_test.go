package datasets_test

import (
	"encoding/binary"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/datasets"
)

// encodeMO writes a .mo catalog in the given byte order, laid out as GNU
// msgfmt does: header, key table, value table, then the strings, each
// followed by a NUL.
func encodeMO(order binary.ByteOrder, keys, vals []string) []byte {
	n := len(keys)
	keyTable, valTable := 28, 28+8*n
	strAt := 28 + 16*n
	buf := make([]byte, strAt)
	put := func(at, v int) { order.PutUint32(buf[at:], uint32(v)) }
	put(0, 0x950412de)
	put(4, 0)
	put(8, n)
	put(12, keyTable)
	put(16, valTable)
	for i := 0; i < n; i++ {
		for t, s := range map[int]string{keyTable: keys[i], valTable: vals[i]} {
			put(t+8*i, len(s))
			put(t+8*i+4, len(buf))
			buf = append(buf, s...)
			buf = append(buf, 0)
		}
	}
	return buf
}

var _ = Describe("ParseMO", func() {
	keys := []string{"", "Open file", "menu\x04Quit", "%d file\x00%d files"}
	vals := []string{"Content-Type: text/plain; charset=UTF-8\n", "Ouvrir le fichier", "Quitter", "%d fichier\x00%d fichiers"}
	want := []datasets.Message{
		{ID: "Open file", Str: "Ouvrir le fichier"},
		{Context: "menu", ID: "Quit", Str: "Quitter"},
		{ID: "%d file", Str: "%d fichier", Plural: true},
	}

	DescribeTable("decodes both byte orders, skipping the header and keeping singular forms",
		func(order binary.ByteOrder) {
			msgs, err := datasets.ParseMO("t.mo", encodeMO(order, keys, vals))
			Expect(err).NotTo(HaveOccurred())
			Expect(msgs).To(Equal(want))
		},
		Entry("little-endian", binary.ByteOrder(binary.LittleEndian)),
		Entry("big-endian", binary.ByteOrder(binary.BigEndian)),
	)

	It("decodes the strings from the header's charset to UTF-8", func() {
		hdr := "Project-Id-Version: t\nContent-Type: text/plain; charset=ISO-8859-1\n"
		data := encodeMO(binary.LittleEndian, []string{"", "Delete the file"}, []string{hdr, "Supprimer le fichier \xe9t\xe9"})
		msgs, err := datasets.ParseMO("latin1.mo", data)
		Expect(err).NotTo(HaveOccurred())
		Expect(msgs).To(Equal([]datasets.Message{{ID: "Delete the file", Str: "Supprimer le fichier été"}}))
	})

	It("rejects invalid UTF-8 in a UTF-8 catalog and unknown charsets", func() {
		_, err := datasets.ParseMO("bad.mo", encodeMO(binary.LittleEndian, []string{"", "Delete"}, []string{"Content-Type: text/plain; charset=UTF-8\n", "\xe9t\xe9"}))
		Expect(err).To(MatchError(ContainSubstring("bad.mo: string 1 is not valid UTF-8")))
		_, err = datasets.ParseMO("odd.mo", encodeMO(binary.LittleEndian, []string{""}, []string{"Content-Type: text/plain; charset=klingon\n"}))
		Expect(err).To(MatchError(ContainSubstring(`odd.mo: unsupported charset "klingon"`)))
	})

	It("rejects a bad magic number, naming the file", func() {
		data := encodeMO(binary.LittleEndian, keys, vals)
		data[0] ^= 0xff
		_, err := datasets.ParseMO("broken.mo", data)
		Expect(err).To(MatchError(ContainSubstring("broken.mo: bad .mo magic")))
	})

	It("rejects a string that runs past the end instead of panicking", func() {
		data := encodeMO(binary.LittleEndian, keys, vals)
		binary.LittleEndian.PutUint32(data[28+8:], 1<<20) // length of key 1
		_, err := datasets.ParseMO("cut.mo", data)
		Expect(err).To(MatchError(ContainSubstring("cut.mo: string 1")))
	})

	It("rejects a table that runs past the end", func() {
		data := encodeMO(binary.LittleEndian, keys, vals)
		binary.LittleEndian.PutUint32(data[8:], 1<<24) // entry count
		_, err := datasets.ParseMO("big.mo", data)
		Expect(err).To(MatchError(ContainSubstring("runs past the end")))
	})

	It("rejects a truncated header", func() {
		_, err := datasets.ParseMO("short.mo", []byte{0xde, 0x12, 0x04})
		Expect(err).To(MatchError(ContainSubstring("short.mo")))
	})
})
