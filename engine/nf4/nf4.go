// Package nf4 implements bitsandbytes' 4-bit NormalFloat (NF4) quantization
// with double quantization of the block scales.
//
// A weight matrix is flattened row-major and cut into blocks of BlockSize
// (64) elements. Each block is scaled by 1/absmax and every element is
// rounded to the nearest of the 16 Code values (a value exactly on a
// midpoint goes to the lower code). Two 4-bit indices share a byte, the first
// element in the high nibble.
//
// Double quantization stores the per-block absmax values in 8 bits: their
// mean (Offset) is subtracted and the rest is quantized blockwise, in groups
// of GroupSize (256), with the signed 8-bit dynamic map (DynamicMap). The
// dequantized value of element i is Code[idx_i] * absmax_b, all in float32,
// where absmax_b = DynamicMap[QAbsmax[b]] * Absmax2[b/GroupSize] + Offset.
package nf4

import (
	"runtime"
	"sync"
)

// BlockSize is the number of weights that share one absmax.
const BlockSize = 64

// GroupSize is the number of absmax values that share one second-level scale.
const GroupSize = 256

// Code is the NF4 code table of bitsandbytes, in index order.
var Code = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// Tensor is an NF4 matrix with double-quantized block scales.
type Tensor struct {
	Rows, Cols int       // the logical shape (out, in) of the weight
	Packed     []byte    // (ceil(Rows*Cols/2)) 4-bit code indices, first element in the high nibble
	QAbsmax    []uint8   // (NumBlocks) DynamicMap index of absmax-Offset per block
	Absmax2    []float32 // (ceil(NumBlocks/GroupSize)) scale of each group of absmax values
	Offset     float32   // mean of the absmax values
	// Map, when set, replaces DynamicMap for the absmax codes (a checkpoint
	// saved by bitsandbytes carries its own copy, nested_quant_map).
	Map *[256]float32
}

// NumBlocks returns the number of blocks of BlockSize elements (the last may be short).
func (t *Tensor) NumBlocks() int { return (t.Rows*t.Cols + BlockSize - 1) / BlockSize }

// Absmax returns the dequantized absmax of block b, computed in float32 as
// bitsandbytes does: DynamicMap[q] * Absmax2[group] + Offset.
func (t *Tensor) Absmax(b int) float32 {
	m := &dynamicMap
	if t.Map != nil {
		m = t.Map
	}
	return float32(m[t.QAbsmax[b]]*t.Absmax2[b/GroupSize]) + t.Offset
}

// Bytes returns the memory the quantized weight takes: packed codes, 8-bit
// absmax codes, the float32 second-level scales and the offset.
func (t *Tensor) Bytes() int {
	return len(t.Packed) + len(t.QAbsmax) + 4*len(t.Absmax2) + 4
}

// Quantize quantizes the row-major (rows, cols) matrix w to NF4 with double
// quantization, following bitsandbytes' reference (pure torch) path:
// quantize_4bit(blocksize=64, quant_type="nf4", compress_statistics=True).
// It panics if len(w) != rows*cols.
func Quantize(w []float32, rows, cols int) *Tensor {
	if len(w) != rows*cols {
		panic("nf4: Quantize: len(w) != rows*cols")
	}
	n := len(w)
	t := &Tensor{Rows: rows, Cols: cols, Packed: make([]byte, (n+1)/2)}
	absmax := make([]float32, t.NumBlocks())
	// Blocks are independent; split them (in pairs of bytes: BlockSize is
	// even) across goroutines for large tensors.
	parallelBlocks(len(absmax), func(lo, hi int) {
		for b := lo; b < hi; b++ {
			absmax[b] = quantizeBlock(t.Packed, w, b)
		}
	})
	if n%2 == 1 { // the pad element is 0.0, code index 7
		t.Packed[n/2] |= nearest(codeBounds[:], 0)
	}
	t.Offset = mean(absmax)
	for i := range absmax {
		absmax[i] -= t.Offset
	}
	t.QAbsmax, t.Absmax2 = quantizeBlockwise8(absmax, GroupSize)
	return t
}

// quantizeBlock packs block b of w into packed and returns its absmax as
// bitsandbytes stores it.
func quantizeBlock(packed []byte, w []float32, b int) float32 {
	blk := w[b*BlockSize : min((b+1)*BlockSize, len(w))]
	am := absMax(blk)
	full := len(blk) == BlockSize
	if !full {
		am = max(am, minAbsmax) // the short last block stores the clamped value
	}
	inv := float32(1) / max(am, minAbsmax)
	for i, x := range blk {
		var s float32
		if full {
			s = x * inv // bitsandbytes multiplies full blocks by the reciprocal
		} else {
			s = x / am // and divides the short last block
		}
		idx := nearest(codeBounds[:], clamp1(s))
		j := b*BlockSize + i
		if j%2 == 0 {
			packed[j/2] = idx << 4
		} else {
			packed[j/2] |= idx
		}
	}
	return am
}

// parallelBlocks calls fn over a split of [0, n) blocks across cores.
func parallelBlocks(n int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n < 4096 || workers == 1 {
		fn(0, n)
		return
	}
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, min(lo+per, n))
	}
	wg.Wait()
}

// Dequantize writes the dequantized matrix into dst (len Rows*Cols):
// Code[idx] * Absmax(block), in float32.
func (t *Tensor) Dequantize(dst []float32) {
	n := t.Rows * t.Cols
	if len(dst) != n {
		panic("nf4: Dequantize: len(dst) != Rows*Cols")
	}
	for b := 0; b < t.NumBlocks(); b++ {
		am := t.Absmax(b)
		for j := b * BlockSize; j < min((b+1)*BlockSize, n); j++ {
			dst[j] = Code[t.Index(j)] * am
		}
	}
}

// Index returns the 4-bit code index of flat element j.
func (t *Tensor) Index(j int) uint8 {
	p := t.Packed[j/2]
	if j%2 == 0 {
		return p >> 4
	}
	return p & 0xf
}

// minAbsmax is the clamp bitsandbytes applies to a block's absmax before
// taking its reciprocal (float32(1e-38), a subnormal).
var minAbsmax = float32(1e-38)

// codeBounds are the float32 midpoints between consecutive NF4 codes.
var codeBounds = func() (b [15]float32) {
	for i := range b {
		b[i] = (Code[i] + Code[i+1]) / 2
	}
	return b
}()

// nearest returns the number of bounds strictly below x: the index of the
// nearest code, a value on a midpoint going to the lower code (torch.bucketize).
func nearest(bounds []float32, x float32) uint8 {
	lo, hi := 0, len(bounds)
	for lo < hi {
		mid := (lo + hi) / 2
		if bounds[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return uint8(lo)
}

func clamp1(x float32) float32 { return min(max(x, -1), 1) }

func absMax(x []float32) float32 {
	var m float32
	for _, v := range x {
		if v < 0 {
			v = -v
		}
		if v > m {
			m = v
		}
	}
	return m
}

// mean returns the float32 mean of x as torch computes absmax.mean() on
// the CPU: torchSum, then a float32 division.
func mean(x []float32) float32 {
	return torchSum(x, torchLanes) / float32(len(x))
}

// quantizeBlockwise8 quantizes x in blocks of size with the signed dynamic
// map: per block absmax, scaled value x*(1/absmax) (x/absmax for the short
// last block), nearest code with ties to the lower one. It returns the codes
// and the per-block absmax.
func quantizeBlockwise8(x []float32, size int) ([]uint8, []float32) {
	q := make([]uint8, len(x))
	nb := (len(x) + size - 1) / size
	scales := make([]float32, nb)
	for b := range scales {
		blk := x[b*size : min((b+1)*size, len(x))]
		am := absMax(blk)
		full := len(blk) == size
		if !full {
			am = max(am, minAbsmax)
		}
		scales[b] = am
		inv := float32(1) / max(am, minAbsmax)
		for i, v := range blk {
			var s float32
			if full {
				s = v * inv
			} else {
				s = v / am
			}
			q[b*size+i] = nearest(dynamicBounds[:], clamp1(s))
		}
	}
	return q, scales
}
