package tokenizer

// EncodeWhole encodes like Encode but runs BPE over each whole piece of
// text between added tokens, never cutting it into words.
func (t *Tokenizer) EncodeWhole(text string) []int {
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	var ids []int
	start := 0
	for start <= len(text) {
		at, tok := t.nextAdded(text, start)
		if at < 0 {
			return t.encodePiece(text[start:], start == 0, ids, s, false)
		}
		ids = t.encodePiece(text[start:at], start == 0, ids, s, false)
		ids = append(ids, tok.id)
		start = at + len(tok.content)
	}
	return ids
}

// SplitSafe reports whether Encode cuts text into words.
func (t *Tokenizer) SplitSafe() bool { return t.splitSafe }
