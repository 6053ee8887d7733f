package llama

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// GenOptions configures Generate. The zero value decodes greedily until
// the config's EOS, with no limit but the KV cache.
type GenOptions struct {
	MaxNewTokens int     // new tokens per prompt; 0 means 128
	Temperature  float64 // 0: greedy (argmax, first index on ties); else sample
	TopK         int     // sampling: keep the k most likely tokens (0: all)
	TopP         float64 // sampling: keep the smallest set with probability >= TopP (0 or 1: all)
	Seed         uint64  // sampling: the same seed gives the same tokens

	EOS         []int32                  // stop tokens; nil means the model config's EOS ids
	StopStrings []string                 // stop once the decoded new text contains one
	Decode      func(ids []int32) string // needed for StopStrings

	// Adapters, when set, names the adapter of each prompt ("" for the
	// active one, Base for none), so one batch can compare adapters. When
	// nil every prompt uses the active adapter.
	Adapters []string
	// Progress, when set, is called after each decode step with the number
	// of steps done and the most that can follow.
	Progress func(done, total int)
}

// Result is what Generate produced for one prompt.
type Result struct {
	IDs    []int32 // the new tokens, including the EOS or the token that completed a stop string
	Reason string  // "eos", "stop" or "length"
}

// Generate continues each prompt (token ids, at least one each) in one
// batch: a prefill step with all prompt tokens, then one decode step per new
// token for the sequences still running. Sequence i uses cache slot i.
// The same inputs and options give the same tokens.
func (m *Model) Generate(prompts [][]int32, o GenOptions) ([]Result, error) {
	if len(prompts) == 0 {
		return nil, nil
	}
	if o.MaxNewTokens <= 0 {
		o.MaxNewTokens = 128
	}
	if len(o.StopStrings) > 0 && o.Decode == nil {
		return nil, fmt.Errorf("llama: stop strings need a tokenizer to decode with")
	}
	if o.Adapters != nil && len(o.Adapters) != len(prompts) {
		return nil, fmt.Errorf("llama: %d adapters for %d prompts", len(o.Adapters), len(prompts))
	}
	if o.Temperature < 0 || o.TopP < 0 || o.TopP > 1 || o.TopK < 0 {
		return nil, fmt.Errorf("llama: temperature %g, top-p %g, top-k %d out of range", o.Temperature, o.TopP, o.TopK)
	}
	eos := o.EOS
	if eos == nil {
		for _, id := range m.Config.EOS() {
			eos = append(eos, int32(id))
		}
	}
	longest := 0
	var ids, seq, pos, want []int32
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("llama: prompt %d is empty", i)
		}
		longest = max(longest, len(p))
		for j, id := range p {
			ids, seq, pos = append(ids, id), append(seq, int32(i)), append(pos, int32(j))
		}
		want = append(want, int32(len(ids)-1))
	}
	B, V := len(prompts), m.Config.VocabSize
	m.Reserve(B, longest+o.MaxNewTokens)
	saved := append([]string(nil), m.slot...)
	defer func() { // restore the slots' adapters; slots new since are unset
		for i := range m.slot {
			m.slot[i] = ""
		}
		copy(m.slot, saved)
	}()
	for i := 0; i < B; i++ {
		name := ""
		if o.Adapters != nil {
			name = o.Adapters[i]
		}
		if err := m.SetSlotAdapter(i, name); err != nil {
			return nil, err
		}
	}

	logits := make([]float32, B*V)
	if err := m.Forward(ids, seq, pos, want, logits); err != nil {
		return nil, err
	}
	res := make([]Result, B)
	for i := range res {
		res[i].IDs = make([]int32, 0, o.MaxNewTokens)
	}
	smp := newSampler(o, V)
	live := make([]int32, B) // slots still generating, in order
	for i := range live {
		live[i] = int32(i)
	}
	next := live[:0:0]
	for step := 0; len(live) > 0; step++ {
		next = next[:0]
		ids, seq, pos = ids[:0], seq[:0], pos[:0]
		for j, sl := range live {
			tok := smp.pick(logits[j*V:(j+1)*V], int(sl))
			r := &res[sl]
			r.IDs = append(r.IDs, tok)
			switch {
			case slices.Contains(eos, tok):
				r.Reason = "eos"
			case stopped(o, r.IDs):
				r.Reason = "stop"
			case len(r.IDs) >= o.MaxNewTokens:
				r.Reason = "length"
			default:
				next = append(next, sl)
				ids, seq, pos = append(ids, tok), append(seq, sl), append(pos, int32(len(prompts[sl])+len(r.IDs)-1))
			}
		}
		live, next = next, live
		if o.Progress != nil {
			o.Progress(step+1, o.MaxNewTokens)
		}
		if len(live) == 0 {
			break
		}
		want = want[:0]
		for j := range live {
			want = append(want, int32(j))
		}
		if err := m.Forward(ids, seq, pos, want, logits[:len(live)*V]); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func stopped(o GenOptions, ids []int32) bool {
	if len(o.StopStrings) == 0 {
		return false
	}
	text := o.Decode(ids)
	for _, s := range o.StopStrings {
		if s != "" && strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// Logits returns the logits of every position of each prompt, prompt by
// prompt ((len(p), vocab) row-major), computed in one batch.
func (m *Model) Logits(prompts [][]int32) ([][]float32, error) {
	var ids, seq, pos, want []int32
	longest := 0
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("llama: prompt %d is empty", i)
		}
		longest = max(longest, len(p))
		for j, id := range p {
			want = append(want, int32(len(ids)))
			ids, seq, pos = append(ids, id), append(seq, int32(i)), append(pos, int32(j))
		}
	}
	m.Reserve(len(prompts), longest)
	V := m.Config.VocabSize
	all := make([]float32, len(ids)*V)
	if err := m.Forward(ids, seq, pos, want, all); err != nil {
		return nil, err
	}
	out := make([][]float32, len(prompts))
	off := 0
	for i, p := range prompts {
		out[i] = all[off*V : (off+len(p))*V : (off+len(p))*V]
		off += len(p)
	}
	return out, nil
}

// sampler picks tokens: argmax when greedy, else temperature, top-k and
// top-p (in that order, as transformers applies them) and a draw from a
// per-sequence PCG stream seeded with (Seed, sequence index).
type sampler struct {
	o     GenOptions
	rngs  map[int]*rand.Rand
	idx   []int32   // (vocab) scratch: token order
	probs []float64 // (vocab) scratch
}

func newSampler(o GenOptions, vocab int) *sampler {
	s := &sampler{o: o, rngs: map[int]*rand.Rand{}}
	if o.Temperature > 0 {
		s.idx, s.probs = make([]int32, vocab), make([]float64, vocab)
	}
	return s
}

func (s *sampler) pick(logits []float32, seq int) int32 {
	if s.o.Temperature == 0 {
		return argmax(logits)
	}
	rng := s.rngs[seq]
	if rng == nil {
		rng = rand.New(rand.NewPCG(s.o.Seed, uint64(seq)))
		s.rngs[seq] = rng
	}
	// Order tokens by logit, highest first (ties by id, for determinism).
	for i := range s.idx {
		s.idx[i] = int32(i)
	}
	slices.SortFunc(s.idx, func(a, b int32) int {
		if c := cmp.Compare(logits[b], logits[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	keep := len(s.idx)
	if k := s.o.TopK; k > 0 && k < keep {
		kth := logits[s.idx[k-1]]
		for keep = k; keep < len(s.idx) && logits[s.idx[keep]] == kth; keep++ { // ties with the k-th stay
		}
	}
	inv, top := 1/s.o.Temperature, float64(logits[s.idx[0]])
	var sum float64
	for j := 0; j < keep; j++ {
		p := math.Exp((float64(logits[s.idx[j]]) - top) * inv)
		s.probs[j] = p
		sum += p
	}
	if p := s.o.TopP; p > 0 && p < 1 {
		// Keep the most likely tokens until their mass reaches TopP.
		var acc float64
		for j := 0; j < keep; j++ {
			acc += s.probs[j] / sum
			if acc >= p {
				keep = j + 1
				break
			}
		}
		sum = 0
		for j := 0; j < keep; j++ {
			sum += s.probs[j]
		}
	}
	u := rng.Float64() * sum
	for j := 0; j < keep; j++ {
		u -= s.probs[j]
		if u < 0 {
			return s.idx[j]
		}
	}
	return s.idx[keep-1]
}

// argmax returns the index of the largest value, the first on ties.
func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}
