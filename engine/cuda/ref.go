package cuda

import (
	"encoding/binary"
	"math"

	"loramix/engine/dtype"
	"loramix/engine/nf4"
)

// CPU mirrors of the matrix kernels' index math (kernels/matmul.cu). They
// walk the data exactly as the kernels do (the shared-memory swizzle of x,
// the nibble order inside 16-byte chunks, the permuted k of the tensor-core
// fragments) but compute in float32 on the host, so the layouts can be
// checked against a plain dequantize-and-multiply on any machine.

// xsSlot mirrors xs_slot: the shared-memory slot of float4 q of an x row.
func xsSlot(q int) int {
	it, rem := q>>8, q&255
	return it<<8 + (rem&7)<<5 + rem>>3
}

// chunkWords returns the four little-endian words of the 16 code bytes of
// the 32 elements starting at flat element j0 (j0 % 32 == 0).
func chunkWords(packed []byte, j0 int) [4]uint32 {
	var w [4]uint32
	for k := range w {
		w[k] = binary.LittleEndian.Uint32(packed[j0/2+4*k:])
	}
	return w
}

// dot32Mirror mirrors dot32_nf4: the 32 codes of a chunk times x values
// read from the swizzled x at xs4 (float4 index of i=0), stride 32 float4.
func dot32Mirror(w [4]uint32, xs []float32, xs4 int) float32 {
	var acc float32
	for k := 0; k < 4; k++ {
		v := w[k]
		xa := xs[(xs4+2*k*32)*4:]
		xb := xs[(xs4+(2*k+1)*32)*4:]
		acc += nf4.Code[(v>>4)&15] * xa[0]
		acc += nf4.Code[(v>>0)&15] * xa[1]
		acc += nf4.Code[(v>>12)&15] * xa[2]
		acc += nf4.Code[(v>>8)&15] * xa[3]
		acc += nf4.Code[(v>>20)&15] * xb[0]
		acc += nf4.Code[(v>>16)&15] * xb[1]
		acc += nf4.Code[(v>>28)&15] * xb[2]
		acc += nf4.Code[(v>>24)&15] * xb[3]
	}
	return acc
}

// gemvNF4Mirror mirrors nf4_gemv_T: y (n, out) = x (n, in) @ wᵀ, in % 32 == 0.
func gemvNF4Mirror(x []float32, q *nf4.Tensor, n int) []float32 {
	out, in := q.Rows, q.Cols
	xsz := (in + 1023) / 1024 * 1024
	xs := make([]float32, n*xsz)
	for t := 0; t < n; t++ { // gemv_stage_x
		for qq := 0; qq < in/4; qq++ {
			copy(xs[t*xsz+4*xsSlot(qq):t*xsz+4*xsSlot(qq)+4], x[t*in+4*qq:t*in+4*qq+4])
		}
	}
	y := make([]float32, n*out)
	const rowsPerWarp = 2
	nchunks := in / 32
	for row0 := 0; row0 < out; row0 += rowsPerWarp {
		var acc [rowsPerWarp][32][]float32 // per row, per lane, per token
		for r := range acc {
			for l := range acc[r] {
				acc[r][l] = make([]float32, n)
			}
		}
		for it := 0; it*32 < nchunks; it++ {
			for lane := 0; lane < 32; lane++ {
				c := it*32 + lane
				if c >= nchunks {
					continue
				}
				for r := 0; r < rowsPerWarp; r++ {
					row := min(row0+r, out-1)
					j0 := row*in + c*32
					w := chunkWords(q.Packed, j0)
					am := q.Absmax(j0 >> 6)
					for t := 0; t < n; t++ {
						acc[r][lane][t] += am * dot32Mirror(w, xs[t*xsz:], it<<8+lane)
					}
				}
			}
		}
		for r := 0; r < rowsPerWarp && row0+r < out; r++ {
			for t := 0; t < n; t++ {
				var s float32
				for lane := 0; lane < 32; lane++ {
					s += acc[r][lane][t]
				}
				y[t*out+row0+r] = s
			}
		}
	}
	return y
}

// Tensor-core mirror. The tile constants of matmul.cu.
const (
	mmaRows = 64 // weight rows per block (4 warps of 16)
	xRow    = 40 // halves per token row of an x plane
)

func xPlane(N int) int { return N*xRow + 16 }

// frag is a pair of values packed in one 32-bit register: lo, hi.
type frag [2]float32

// mmaMirror mirrors nf4_mma_N (q != nil) or f16_mma_N (w16 != nil, (out,
// in) values already rounded to half): y (n, out) = x @ wᵀ, in % 128 == 0.
// Values stay float32; what is checked is where each one travels.
func mmaMirror(x []float32, q *nf4.Tensor, w16 []float32, out, in, n, N int) []float32 {
	y := make([]float32, n*out)
	xs := make([]float32, 4*xPlane(N))
	for tok0 := 0; tok0 < n; tok0 += N {
		for blk := 0; blk*mmaRows < out; blk++ {
			// acc[warp][lane][j][e]
			acc := make([][32][][4]float32, 4)
			for w := range acc {
				for l := range acc[w] {
					acc[w][l] = make([][4]float32, N/8)
				}
			}
			for k0 := 0; k0 < in; k0 += 128 {
				// stage_x_tile
				for qq := 0; qq < N*32; qq++ {
					tok, f4 := qq>>5, qq&31
					var v [4]float32
					if tok0+tok < n {
						copy(v[:], x[(tok0+tok)*in+k0+f4*4:])
					}
					t, e := f4>>3, (f4&7)*4
					copy(xs[t*xPlane(N)+tok*xRow+e:], v[:])
				}
				for warp := 0; warp < 4; warp++ {
					row0 := blk*mmaRows + warp*16
					var a [32][8][4]frag
					for lane := 0; lane < 32; lane++ {
						g, t := lane>>2, lane&3
						ra, rb := min(row0+g, out-1), min(row0+g+8, out-1)
						if q != nil {
							ja, jb := ra*in+k0+t*32, rb*in+k0+t*32
							a[lane] = nf4FragsMirror(chunkWords(q.Packed, ja), chunkWords(q.Packed, jb),
								q.Absmax(ja>>6), q.Absmax(jb>>6))
						} else {
							ca := w16[ra*in+k0+t*32:]
							cb := w16[rb*in+k0+t*32:]
							for s := 0; s < 8; s++ { // halves 4s..4s+3
								a[lane][s][0] = frag{ca[4*s], ca[4*s+1]}
								a[lane][s][2] = frag{ca[4*s+2], ca[4*s+3]}
								a[lane][s][1] = frag{cb[4*s], cb[4*s+1]}
								a[lane][s][3] = frag{cb[4*s+2], cb[4*s+3]}
							}
						}
					}
					for j := 0; j < N/8; j++ {
						for s2 := 0; s2 < 4; s2++ {
							var b [32][4]frag // lane's uint4 = 4 registers
							for lane := 0; lane < 32; lane++ {
								g, t := lane>>2, lane&3
								p := xs[t*xPlane(N)+(j*8+g)*xRow+8*s2:]
								for r := 0; r < 4; r++ {
									b[lane][r] = frag{p[2*r], p[2*r+1]}
								}
							}
							for half := 0; half < 2; half++ {
								s := 2*s2 + half
								var af [32][4]frag
								var bf [32][2]frag
								for lane := 0; lane < 32; lane++ {
									af[lane] = a[lane][s]
									bf[lane] = [2]frag{b[lane][2*half], b[lane][2*half+1]}
								}
								d := mma16816Mirror(af, bf)
								for lane := 0; lane < 32; lane++ {
									for e := 0; e < 4; e++ {
										acc[warp][lane][j][e] += d[lane][e]
									}
								}
							}
						}
					}
				}
			}
			for warp := 0; warp < 4; warp++ { // mma_store
				row0 := blk*mmaRows + warp*16
				for lane := 0; lane < 32; lane++ {
					g, t := lane>>2, lane&3
					for j := 0; j < N/8; j++ {
						for e := 0; e < 4; e++ {
							row, tok := row0+g+(e>>1)*8, tok0+j*8+2*t+(e&1)
							if row < out && tok < n {
								y[tok*out+row] += acc[warp][lane][j][e]
							}
						}
					}
				}
			}
		}
	}
	return y
}

// nf4FragsMirror mirrors nf4_a_frags.
func nf4FragsMirror(r0, r1 [4]uint32, am0, am1 float32) (a [8][4]frag) {
	c := func(v uint32, sh uint) float32 { return nf4.Code[(v>>sh)&15] }
	for s := 0; s < 8; s++ {
		v0 := r0[s>>1] >> ((s & 1) * 16)
		v1 := r1[s>>1] >> ((s & 1) * 16)
		a[s][0] = frag{c(v0, 4) * am0, c(v0, 0) * am0}
		a[s][2] = frag{c(v0, 12) * am0, c(v0, 8) * am0}
		a[s][1] = frag{c(v1, 4) * am1, c(v1, 0) * am1}
		a[s][3] = frag{c(v1, 12) * am1, c(v1, 8) * am1}
	}
	return a
}

// mma16816Mirror is mma.sync.m16n8k16.row.col on per-lane fragments, with
// PTX's fragment layout: lane (g = lane/4, t = lane%4) holds A[g][2t..2t+1],
// A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..]; B[2t..2t+1][g], B[2t+8..][g];
// and returns D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1].
func mma16816Mirror(a [32][4]frag, b [32][2]frag) (d [32][4]float32) {
	var A [16][16]float32
	var B [16][8]float32
	for lane := 0; lane < 32; lane++ {
		g, t := lane>>2, lane&3
		for h := 0; h < 2; h++ {
			A[g][2*t+h] = a[lane][0][h]
			A[g+8][2*t+h] = a[lane][1][h]
			A[g][2*t+8+h] = a[lane][2][h]
			A[g+8][2*t+8+h] = a[lane][3][h]
			B[2*t+h][g] = b[lane][0][h]
			B[2*t+8+h][g] = b[lane][1][h]
		}
	}
	for lane := 0; lane < 32; lane++ {
		g, t := lane>>2, lane&3
		for e := 0; e < 4; e++ {
			row, col := g+(e>>1)*8, 2*t+(e&1)
			var s float32
			for k := 0; k < 16; k++ {
				s += A[row][k] * B[k][col]
			}
			d[lane][e] = s
		}
	}
	return d
}

// prmtMirror is PTX's prmt.b32 (CUDA's __byte_perm) in its default mode:
// byte i of the result is byte (sel >> 4i) & 7 of the eight bytes a, b (a
// first), or that byte's sign replicated when bit 3 of the selector is set.
func prmtMirror(a, b, sel uint32) uint32 {
	src := uint64(a) | uint64(b)<<32
	var r uint32
	for i := 0; i < 4; i++ {
		s := sel >> (4 * i) & 15
		v := uint32(src >> (8 * (s & 7)) & 0xff)
		if s&8 != 0 {
			v = 0
			if v2 := uint32(src>>(8*(s&7))) & 0x80; v2 != 0 {
				v = 0xff
			}
		}
		r |= v << (8 * i)
	}
	return r
}

// mmaxLookupOffset mirrors mmax_ap's offset: byte k of the code word v for
// lane (nf4_mmax_8's spread table, entries 256 bytes apart, 16 replicas).
func mmaxLookupOffset(v uint32, k, lane int) uint32 {
	return prmtMirror(v, uint32(lane%16*8), 0x5504|uint32(k)<<4)
}

// mmaxRowMirror mirrors mmax_row: local row r (0-15) of tile lt of weight d,
// under RoPE (rhd > 0, d < 2) rows j and j + rhd/2 of a head as r and r + 8.
func mmaxRowMirror(lt, r, d, rhd int) int {
	if rhd > 0 && d < 2 {
		tph := rhd >> 4
		h := lt / tph
		return h*rhd + (lt-h*tph)*8 + r&7 + (r>>3)*(rhd>>1)
	}
	return lt*16 + r
}

// half rounds v to the nearest half (ties to even), as the kernels'
// conversions do.
func half(v float32) float32 { return dtype.F16ToF32(dtype.F32ToF16(v)) }

// mmaxPostMirror is what the post-scaled tensor-core kernels (nf4_mmaxp_8,
// nf4_mmaxfp_8) compute, in float64: y (n, out) = x @ wᵀ with each code and
// each x rounded to half, every 64-input absmax block's products summed
// unscaled and then times its absmax. bound (n, out) is the sum of the
// terms' magnitudes, the scale of a tolerance for another summation order.
// in = q.Cols must be a multiple of 64.
func mmaxPostMirror(x []float32, q *nf4.Tensor, n int) (y, bound []float64) {
	out, in := q.Rows, q.Cols
	y, bound = make([]float64, n*out), make([]float64, n*out)
	var hc [16]float64
	for i, c := range nf4.Code {
		hc[i] = float64(half(c))
	}
	xh := make([]float64, len(x))
	for i, v := range x {
		xh[i] = float64(half(v))
	}
	for r := 0; r < out; r++ {
		for b0 := 0; b0 < in; b0 += nf4.BlockSize {
			am := float64(q.Absmax((r*in + b0) / nf4.BlockSize))
			for t := 0; t < n; t++ {
				s, m := 0.0, 0.0
				for j := b0; j < b0+nf4.BlockSize; j++ {
					p := hc[q.Index(r*in+j)] * xh[t*in+j]
					s, m = s+p, m+math.Abs(p)
				}
				y[t*out+r] += am * s
				bound[t*out+r] += math.Abs(am) * m
			}
		}
	}
	return y, bound
}

// The post-scaled kernels' k layout. Lane t (= lane % 4) of a warp takes
// inputs 16 t + 64 b .. + 15 of each of the warp's four 64-input blocks b;
// mma step s takes, for k 2t, 2t+1 (lo) and k 2t+8, 2t+9 (hi), the inputs
// below (relative to the warp's first input). The three mirrors follow the
// code, the half x and the float32 x to those inputs the way the kernel
// loads them; a spec checks that they agree and that a step stays in one
// absmax block (s / 4).

// mmaxPostCodeInputs mirrors mmax_load<POST> and the step's byte choice:
// block b's 8 code bytes are words 2b and 2b+1 of a row (two codes a
// byte), and step s reads byte 2 (s & 1) of word s / 2 (lo) and the byte
// after it (hi).
func mmaxPostCodeInputs(t, s int) (lo, hi [2]int) {
	word := s >> 1
	first := 16*t + 64*(word/2) + 8*(word%2) // the word's first input
	k := 2 * (s & 1)
	return [2]int{first + 2*k, first + 2*k + 1}, [2]int{first + 2*k + 2, first + 2*k + 3}
}

// mmaxPostHalfInputs mirrors the B fragments' loads from half x: uint4 q
// (8 halves) of the lane at 64 (q / 2) + 8 (q % 2) after its first input,
// steps 2q and 2q+1 taking its halves 0-3 and 4-7.
func mmaxPostHalfInputs(t, s int) (lo, hi [2]int) {
	q := s >> 1
	first := 16*t + 64*(q>>1) + 8*(q&1) + 4*(s&1)
	return [2]int{first, first + 1}, [2]int{first + 2, first + 3}
}

// mmaxPostFloatInputs mirrors the B fragments' loads from float32 x: the
// float4 of step s at 64 (s / 4) + 4 (s % 4) after the lane's first input.
func mmaxPostFloatInputs(t, s int) (lo, hi [2]int) {
	first := 16*t + 64*(s>>2) + 4*(s&3)
	return [2]int{first, first + 1}, [2]int{first + 2, first + 3}
}

// The tensor-core step's adapter layout (nf4_mmaxfpl_8).

// mmaxLBStageSlot mirrors mmax_lb_stage's chunk c (a 16-byte copy) for
// ranks of cpr chunks a row: the block's tile i, local row r, the chunk ch
// of the row, and the float offset it is copied to.
func mmaxLBStageSlot(c, cpr int) (i, r, ch, off int) {
	i, r, ch = c/(16*cpr), (c/cpr)&15, c%cpr
	return i, r, ch, (i*16+r)*(4*cpr+4) + 4*ch
}

// mmaxLBReadOffset mirrors the expanding warp's read of tile it's local
// row r at rank lr: the float offset of the row's first rank.
func mmaxLBReadOffset(it, r, lr int) int { return (it*16 + r) * (lr + 4) }

// mmaxExpandLane mirrors the expanding warp's split: lane l computes local
// row l / 2 over the float4s q = l % 2, l % 2 + 2, ... of its ranks; the
// lanes that hold rows g and g + 8 of the partial sums (t = 0, lane 4 g)
// take them from lanes 2 g and 2 g + 16 after the pair's shuffle.
func mmaxExpandLane(l int) (row, firstQ int) { return l >> 1, l & 1 }

// mmaxExpandSources mirrors the shuffles' source lanes for row group g.
func mmaxExpandSources(g int) (lo, hi int) { return 2 * g, 2*g + 16 }
