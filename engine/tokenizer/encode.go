package tokenizer

import "strings"

// Encode returns the token ids of text, with BOS() first when addBOS is
// true. Added tokens written in the text ("<s>", "</s>", "<unk>") become
// their ids, as in transformers; the text between them is normalized and
// BPE-encoded piece by piece.
func (t *Tokenizer) Encode(text string, addBOS bool) []int {
	ids := make([]int, 0, len(text)/3+2)
	if addBOS {
		ids = append(ids, t.bos)
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	start := 0
	for start <= len(text) {
		at, tok := t.nextAdded(text, start)
		if at < 0 {
			ids = t.encodePiece(text[start:], start == 0, ids, s, t.splitSafe)
			break
		}
		ids = t.encodePiece(text[start:at], start == 0, ids, s, t.splitSafe)
		ids = append(ids, tok.id)
		start = at + len(tok.content)
	}
	return ids
}

// EncodeSpecial frames Encode as tokenizer_config.json asks (add_bos_token,
// add_eos_token), like transformers' encode with add_special_tokens=True.
func (t *Tokenizer) EncodeSpecial(text string) []int {
	ids := t.Encode(text, t.addBOS)
	if t.addEOS && t.eos >= 0 {
		ids = append(ids, t.eos)
	}
	return ids
}

// nextAdded finds the leftmost added token in text at or after from, the
// longest one where several start there. at is -1 when there is none.
func (t *Tokenizer) nextAdded(text string, from int) (at int, tok addedToken) {
	for i := from; i < len(text); i++ {
		if !t.addedFirst[text[i]] {
			continue
		}
		best := -1
		for k, a := range t.added {
			if strings.HasPrefix(text[i:], a.content) && (best < 0 || len(a.content) > len(t.added[best].content)) {
				best = k
			}
		}
		if best >= 0 {
			return i, t.added[best]
		}
	}
	return -1, addedToken{}
}

// encodePiece normalizes one piece of text between added tokens and appends
// its BPE ids. first tells whether the piece starts the text.
func (t *Tokenizer) encodePiece(piece string, first bool, ids []int, s *scratch, split bool) []int {
	if piece == "" {
		return ids
	}
	for _, st := range t.norm {
		if st.prepend != "" {
			piece = st.prepend + piece
		} else {
			piece = strings.ReplaceAll(piece, st.from, st.to)
		}
	}
	if m := t.meta; m != nil {
		piece = strings.ReplaceAll(piece, " ", m.repl)
		if (m.scheme == "always" || (m.scheme == "first" && first)) && !strings.HasPrefix(piece, m.repl) {
			piece = m.repl + piece
		}
		if m.split {
			return t.encodeWords(piece, ids, s, true)
		}
	}
	if split {
		return t.encodeWords(piece, ids, s, false)
	}
	return t.encodeWord(piece, ids, s)
}

// encodeWords cuts normalized text before each marker and encodes the
// words one by one: before every marker when every is true (Metaspace with
// split), else only before a marker that follows another char (exact when
// splitSafe holds, see checkSplitSafe).
func (t *Tokenizer) encodeWords(text string, ids []int, s *scratch, every bool) []int {
	m := t.marker
	start, i := 0, 0
	for {
		j := strings.Index(text[i:], m)
		if j < 0 {
			break
		}
		p := i + j
		if p > start && (every || !strings.HasSuffix(text[:p], m)) {
			ids = t.encodeWord(text[start:p], ids, s)
			start = p
		}
		i = p + len(m)
	}
	return t.encodeWord(text[start:], ids, s)
}

// encodeWord appends the BPE ids of one normalized word, through the cache.
func (t *Tokenizer) encodeWord(w string, ids []int, s *scratch) []int {
	if w == "" {
		return ids
	}
	if hit, ok := t.cache.get(w); ok {
		for _, id := range hit {
			ids = append(ids, int(id))
		}
		return ids
	}
	s.ids = s.ids[:0]
	t.bpe(w, s)
	t.cache.put(w, s.ids)
	for _, id := range s.ids {
		ids = append(ids, int(id))
	}
	return ids
}
