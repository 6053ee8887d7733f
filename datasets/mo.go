// Package datasets builds the reference world's corpora from Debian: French→English
// sentence pairs (gettext catalogs and package-description translations), chat
// dialogues made from English package descriptions, and monolingual pretraining
// text. Nothing it reads or writes is committed; the manifest records every input.
package datasets

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/ianaindex"
)

// Message is one entry of a gettext catalog. For plural entries ID and Str hold
// the singular forms only (msgid and msgstr[0]).
type Message struct {
	Context string // msgctxt, empty when absent
	ID      string // msgid (singular)
	Str     string // msgstr (singular)
	Plural  bool   // the entry has plural forms
}

const (
	moMagic       = 0x950412de
	moHeaderBytes = 28
	ctxSeparator  = "\x04" // between msgctxt and msgid in a .mo key
)

// ParseMO decodes a GNU gettext .mo catalog of either byte order. name is used
// in error messages only. The header entry (empty msgid) is skipped; its
// charset (Content-Type: text/plain; charset=...) says how to decode the
// strings, which are returned as UTF-8. Every offset and length is checked
// against the data, so a corrupt file returns an error and never panics.
func ParseMO(name string, data []byte) ([]Message, error) {
	if len(data) < moHeaderBytes {
		return nil, fmt.Errorf("%s: %d bytes is too short for a .mo header", name, len(data))
	}
	var order binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint32(data) == moMagic:
		order = binary.LittleEndian
	case binary.BigEndian.Uint32(data) == moMagic:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: bad .mo magic %#08x", name, binary.LittleEndian.Uint32(data))
	}
	if major := order.Uint32(data[4:]) >> 16; major > 1 {
		return nil, fmt.Errorf("%s: unsupported .mo major revision %d", name, major)
	}
	n := int64(order.Uint32(data[8:]))
	origTable := int64(order.Uint32(data[12:]))
	transTable := int64(order.Uint32(data[16:]))
	size := int64(len(data))
	for _, t := range []int64{origTable, transTable} {
		if t+8*n > size {
			return nil, fmt.Errorf("%s: string table at %d with %d entries runs past the end (%d bytes)", name, t, n, size)
		}
	}
	str := func(table int64, i int64) (string, error) {
		at := table + 8*i
		length := int64(order.Uint32(data[at:]))
		off := int64(order.Uint32(data[at+4:]))
		if off+length > size {
			return "", fmt.Errorf("%s: string %d at %d+%d runs past the end (%d bytes)", name, i, off, length, size)
		}
		return string(data[off : off+length]), nil
	}
	msgs := make([]Message, 0, n)
	var dec *encoding.Decoder // nil: UTF-8
	for i := int64(0); i < n; i++ {
		key, err := str(origTable, i)
		if err != nil {
			return nil, err
		}
		val, err := str(transTable, i)
		if err != nil {
			return nil, err
		}
		if key == "" {
			if dec, err = headerDecoder(name, val); err != nil {
				return nil, err
			}
			continue // header entry
		}
		if dec != nil {
			if key, err = dec.String(key); err == nil {
				val, err = dec.String(val)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: string %d: %w", name, i, err)
			}
		}
		if !utf8.ValidString(key) || !utf8.ValidString(val) {
			return nil, fmt.Errorf("%s: string %d is not valid UTF-8 (is the header's charset right?)", name, i)
		}
		var m Message
		if ctx, id, ok := strings.Cut(key, ctxSeparator); ok {
			m.Context, key = ctx, id
		}
		if single, _, ok := strings.Cut(key, "\x00"); ok {
			m.Plural, key = true, single
		}
		if single, _, ok := strings.Cut(val, "\x00"); ok {
			val = single
		}
		m.ID, m.Str = key, val
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// headerDecoder returns the decoder for the charset named in a catalog header,
// or nil for UTF-8 (also when no charset is named).
func headerDecoder(name, header string) (*encoding.Decoder, error) {
	for _, line := range strings.Split(header, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "Content-Type") {
			continue
		}
		_, cs, ok := strings.Cut(strings.ToLower(v), "charset=")
		if !ok {
			return nil, nil
		}
		cs = strings.TrimSpace(cs)
		if cs == "" || cs == "utf-8" || cs == "utf8" || cs == "charset" || cs == "ascii" || cs == "us-ascii" {
			return nil, nil
		}
		enc, err := ianaindex.IANA.Encoding(cs)
		if err != nil || enc == nil {
			return nil, fmt.Errorf("%s: unsupported charset %q in the catalog header", name, cs)
		}
		return enc.NewDecoder(), nil
	}
	return nil, nil
}
