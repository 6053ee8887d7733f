package tokenizer

import (
	"sync"
	"unicode/utf8"
)

// mergeTable is an open-addressing hash table from a pair of ids to the
// merge's rank and the merged id.
type mergeTable struct {
	keys  []uint64 // left<<32 | right; emptyKey where free
	vals  []uint64 // rank<<32 | merged id
	shift uint
}

const emptyKey = ^uint64(0)

func (m *mergeTable) init(n int) {
	size, bits := 16, uint(4)
	for size < 2*n {
		size, bits = size*2, bits+1
	}
	m.keys = make([]uint64, size)
	m.vals = make([]uint64, size)
	for i := range m.keys {
		m.keys[i] = emptyKey
	}
	m.shift = 64 - bits
}

func (m *mergeTable) slot(k uint64) uint64 {
	return (k * 0x9E3779B97F4A7C15) >> m.shift
}

func (m *mergeTable) put(a, b, rank, id int32) {
	k := uint64(a)<<32 | uint64(b)
	mask := uint64(len(m.keys) - 1)
	for i := m.slot(k); ; i = (i + 1) & mask {
		if m.keys[i] == emptyKey || m.keys[i] == k {
			m.keys[i] = k
			m.vals[i] = uint64(rank)<<32 | uint64(uint32(id))
			return
		}
	}
}

// get returns the rank and merged id of the pair (a, b).
func (m *mergeTable) get(a, b int32) (rank, id int32, ok bool) {
	k := uint64(a)<<32 | uint64(b)
	mask := uint64(len(m.keys) - 1)
	for i := m.slot(k); ; i = (i + 1) & mask {
		switch m.keys[i] {
		case k:
			v := m.vals[i]
			return int32(v >> 32), int32(uint32(v)), true
		case emptyKey:
			return 0, 0, false
		}
	}
}

func (m *mergeTable) each(fn func(a, b int32)) {
	for _, k := range m.keys {
		if k != emptyKey {
			fn(int32(k>>32), int32(uint32(k)))
		}
	}
}

// symbol is one piece of a word during merging, in a doubly linked list.
type symbol struct {
	id         int32
	prev, next int32 // -1 at the ends
	gone       bool  // merged into its left neighbour
}

// candidate is a possible merge of the symbol at pos with its right
// neighbour. Candidates pop lowest rank first, then leftmost.
type candidate struct {
	rank, pos, id int32
}

// scratch holds the buffers of one word's merging, reused across words.
type scratch struct {
	syms []symbol
	heap []candidate
	ids  []int32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (s *scratch) push(c candidate) {
	h := append(s.heap, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	s.heap = h
}

func (s *scratch) pop() candidate {
	h := s.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && less(h[r], h[l]) {
			c = r
		}
		if !less(h[c], h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	s.heap = h
	return top
}

func less(a, b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

func (s *scratch) add(id int32) {
	n := int32(len(s.syms))
	if n > 0 {
		s.syms[n-1].next = n
	}
	s.syms = append(s.syms, symbol{id: id, prev: n - 1, next: -1})
}

// bpe appends to s.ids the BPE ids of word, exactly as the tokenizers
// library's BPE model does: one symbol per char (its byte tokens when the
// char is not in the vocabulary, else the unknown token, fused), then merges
// by rank, leftmost first among equal ranks.
func (t *Tokenizer) bpe(word string, s *scratch) {
	s.syms = s.syms[:0]
	s.heap = s.heap[:0]
	unkPending := false
	for i := 0; i < len(word); {
		c := word[i]
		var id int32 = -1
		size := 1
		if c < utf8.RuneSelf {
			id = t.ascii[c]
		} else {
			_, size = utf8.DecodeRuneInString(word[i:])
			if v, ok := t.vocab[word[i:i+size]]; ok {
				id = v
			}
		}
		switch {
		case id >= 0:
			if unkPending {
				s.add(t.unk)
				unkPending = false
			}
			s.add(id)
		case t.byteFallback && t.hasBytes(word[i:i+size]):
			// Like the tokenizers library, a pending unknown token is
			// not flushed before byte tokens.
			for j := i; j < i+size; j++ {
				s.add(t.byteIDs[word[j]])
			}
		case t.unk >= 0:
			if unkPending && !t.fuseUnk {
				s.add(t.unk)
			}
			unkPending = true
		}
		i += size
	}
	if unkPending {
		s.add(t.unk)
	}

	syms := s.syms
	for i := 0; i+1 < len(syms); i++ {
		if rank, id, ok := t.merges.get(syms[i].id, syms[i+1].id); ok {
			s.push(candidate{rank, int32(i), id})
		}
	}
	for len(s.heap) > 0 {
		top := s.pop()
		left := &syms[top.pos]
		if left.gone || left.next < 0 {
			continue
		}
		right := &syms[left.next]
		// Skip stale candidates: the pair must still merge into top.id.
		if _, id, ok := t.merges.get(left.id, right.id); !ok || id != top.id {
			continue
		}
		left.id = top.id
		right.gone = true
		left.next = right.next
		if left.next >= 0 {
			syms[left.next].prev = top.pos
		}
		if left.prev >= 0 {
			if rank, id, ok := t.merges.get(syms[left.prev].id, left.id); ok {
				s.push(candidate{rank, left.prev, id})
			}
		}
		if left.next >= 0 {
			if rank, id, ok := t.merges.get(left.id, syms[left.next].id); ok {
				s.push(candidate{rank, top.pos, id})
			}
		}
	}
	for i := int32(0); len(syms) > 0 && i >= 0; i = syms[i].next {
		s.ids = append(s.ids, syms[i].id)
	}
}

func (t *Tokenizer) hasBytes(ch string) bool {
	for j := 0; j < len(ch); j++ {
		if t.byteIDs[ch[j]] < 0 {
			return false
		}
	}
	return true
}
