package metrics

import "encoding/binary"

// DefaultRepeatN is the n-gram order RepeatedNGramShare uses by default.
const DefaultRepeatN = 3

// RepeatedNGramShare returns the fraction of the n-grams of seq (tokens,
// words or characters) that already occurred earlier in seq: 0 for text
// without repetition, close to 1 for a loop. It is 0 when seq has fewer than
// n elements. It panics if n < 1.
func RepeatedNGramShare[T comparable](seq []T, n int) float64 {
	if n < 1 {
		panic("metrics: RepeatedNGramShare: n < 1")
	}
	total := len(seq) - n + 1
	if total <= 0 {
		return 0
	}
	ids := intern(seq)
	seen := make(map[string]struct{}, total)
	repeats := 0
	for i := 0; i < total; i++ {
		k := key(ids[i : i+n])
		if _, ok := seen[k]; ok {
			repeats++
		} else {
			seen[k] = struct{}{}
		}
	}
	return float64(repeats) / float64(total)
}

// intern maps each distinct element to a small integer.
func intern[T comparable](seq []T) []int {
	m := make(map[T]int)
	out := make([]int, len(seq))
	for i, x := range seq {
		id, ok := m[x]
		if !ok {
			id = len(m)
			m[x] = id
		}
		out[i] = id
	}
	return out
}

func key(ids []int) string {
	b := make([]byte, 0, 3*len(ids))
	for _, x := range ids {
		b = binary.AppendUvarint(b, uint64(x))
	}
	return string(b)
}

// Loop is a unit repeated back to back in a sequence.
type Loop struct {
	Start int // index of the first element of the first repetition
	Unit  int // length of the repeated unit
	Count int // complete consecutive repetitions (>= 2)
	Tail  int // elements after the last complete repetition that repeat the unit's prefix
}

// FindLoop finds the unit of at least minUnit elements that repeats back to
// back at least minRepeats times and covers the most elements (Count*Unit);
// ties go to the shorter unit, then the earlier start. ok is false when there
// is none. It runs in O(len(seq)^2). It panics if minUnit < 1 or
// minRepeats < 2.
func FindLoop[T comparable](seq []T, minUnit, minRepeats int) (loop Loop, ok bool) {
	if minUnit < 1 || minRepeats < 2 {
		panic("metrics: FindLoop: want minUnit >= 1 and minRepeats >= 2")
	}
	n := len(seq)
	run := make([]int, n+1)
	for l := minUnit; l*minRepeats <= n; l++ {
		// run[i]: how many consecutive positions from i satisfy seq[j] == seq[j+l].
		run[n-l] = 0
		for i := n - l - 1; i >= 0; i-- {
			if seq[i] == seq[i+l] {
				run[i] = run[i+1] + 1
			} else {
				run[i] = 0
			}
		}
		for s := 0; s+l*minRepeats <= n; s++ {
			count := 1 + run[s]/l
			if count < minRepeats {
				continue
			}
			if !ok || count*l > loop.Count*loop.Unit {
				loop, ok = Loop{Start: s, Unit: l, Count: count, Tail: run[s] % l}, true
			}
		}
	}
	return loop, ok
}

// TextLoop is a loop found in text, in characters (code points).
type TextLoop struct {
	Loop
	Text string // the repeated unit
}

// FindTextLoop is FindLoop over the characters of text, returning the unit
// as a string, e.g. "###> You are the only customer in the store." repeated
// 2 times with a tail of 12 for
// "###> You are the only customer in the store.###> You are the only customer in the store.###> You are".
func FindTextLoop(text string, minChars, minRepeats int) (TextLoop, bool) {
	rs := []rune(text)
	l, ok := FindLoop(rs, minChars, minRepeats)
	if !ok {
		return TextLoop{}, false
	}
	return TextLoop{Loop: l, Text: string(rs[l.Start : l.Start+l.Unit])}, true
}
