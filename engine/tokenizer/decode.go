package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Decode returns the text of ids as transformers' decode with
// skip_special_tokens=False does: pieces with '▁' turned into ' ', runs of
// byte tokens turned into their UTF-8 text (one U+FFFD per byte when the run
// is not valid UTF-8), special tokens written as such ("<s>"), the leading
// space of the text removed. Ids out of range are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	d := t.NewDecoder()
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(d.Add(id))
	}
	b.WriteString(d.Flush())
	return b.String()
}

// DecodeToken returns the text one token contributes in the middle of a
// sequence: its piece with '▁' turned into ' ', or for a byte token the
// single raw byte (which alone may not be valid UTF-8). Concatenating
// DecodeToken over ids gives Decode(ids) up to the removed leading space and
// the U+FFFD written for invalid byte runs. Ids out of range give "".
func (t *Tokenizer) DecodeToken(id int) string {
	if id < 0 || id >= len(t.decoded) {
		return ""
	}
	if b := t.byteOf[id]; b >= 0 {
		return string([]byte{byte(b)})
	}
	return t.decoded[id]
}

// Decoder decodes a stream of ids incrementally: the concatenation of
// everything Add and Flush return equals Decode of all ids. Byte tokens are
// held back until the next other token (or Flush), because a run of them is
// only known to be valid UTF-8 once it ends. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	t       *Tokenizer
	pending []byte // bytes of the current run of byte tokens
	strip   int    // leading strip chars still to remove
}

// NewDecoder returns a streaming decoder.
func (t *Tokenizer) NewDecoder() *Decoder {
	return &Decoder{t: t, strip: t.stripN}
}

// Add feeds one id and returns the text that it completes (maybe "").
func (d *Decoder) Add(id int) string {
	t := d.t
	if id < 0 || id >= len(t.decoded) {
		return ""
	}
	if b := t.byteOf[id]; b >= 0 {
		d.pending = append(d.pending, byte(b))
		return ""
	}
	out := d.flushBytes()
	return d.emit(out, t.decoded[id])
}

// Flush returns the text of a trailing run of byte tokens and resets the
// run; the Decoder can go on after it.
func (d *Decoder) Flush() string {
	return d.emit(d.flushBytes(), "")
}

func (d *Decoder) flushBytes() string {
	if len(d.pending) == 0 {
		return ""
	}
	var s string
	if utf8.Valid(d.pending) {
		s = string(d.pending)
	} else {
		s = strings.Repeat("\uFFFD", len(d.pending))
	}
	d.pending = d.pending[:0]
	return s
}

// emit joins a and b and removes the leading strip chars of the whole text.
func (d *Decoder) emit(a, b string) string {
	s := a + b
	for d.strip > 0 && s != "" {
		if !strings.HasPrefix(s, d.t.strip) {
			d.strip = 0
			break
		}
		s = s[len(d.t.strip):]
		d.strip--
	}
	return s
}
