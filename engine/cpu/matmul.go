package cpu

import (
	"fmt"

	"loramix/engine/backend"
	"loramix/engine/nf4"
)

// tileRows is how many weight rows are converted to float32 at once when a
// step has several tokens: the tile stays in cache while every token's row
// of x is multiplied with it.
const tileRows = 16

// MatMul computes dst (n, out) = x (n, in) @ wᵀ for w (out, in) in F32, F16
// or NF4. Work is split over output rows. With one token the NF4 kernel
// decodes each block of 64 on the fly; with several, tiles of weight rows
// are decoded once and reused for every token. Under Compute F16 an NF4
// weight is dequantized to half precision first (bitsandbytes' fp16
// compute); F32 and F16 weights are used as they are.
func (c *CPU) MatMul(dst, x, w backend.Tensor) {
	d, xx, ww := ct(dst), ct(x), ct(w)
	n, in := dims2("MatMul x", xx)
	out, win := ww.shape[0], ww.shape[1]
	if win != in || d.shape[0] != n || backend.Elements(d.shape) != n*out || xx.dt != backend.F32 || d.dt != backend.F32 {
		panic(fmt.Sprintf("cpu: MatMul: dst %v %v, x %v %v, w %v %v", d.dt, d.shape, xx.dt, xx.shape, ww.dt, ww.shape))
	}
	X, D := xx.F32, d.F32
	switch ww.dt {
	case backend.F32:
		W := ww.F32
		c.parallel(out, n*in, tileRows, func(_, lo, hi int) {
			for t0 := lo; t0 < hi; t0 += tileRows {
				t1 := min(t0+tileRows, hi)
				tileDots(D, X, W[t0*in:t1*in], n, in, out, t0, t1)
			}
		})
	case backend.F16:
		W := ww.F16
		if n == 1 {
			c.parallel(out, in, 1, func(_, lo, hi int) {
				for o := lo; o < hi; o++ {
					D[o] = dotF16(X, W[o*in:(o+1)*in])
				}
			})
			break
		}
		// Several tokens: four at a time per weight row, converting the
		// halves in registers.
		c.parallel(out, n*in, tileRows, func(_, lo, hi int) {
			var acc [4]float32
			for t0 := lo; t0 < hi; t0 += tileRows {
				t1 := min(t0+tileRows, hi)
				r := 0
				for ; r+4 <= n; r += 4 {
					for o := t0; o < t1; o++ {
						dot4F16(W[o*in:(o+1)*in], X[r*in:], in, &acc)
						D[r*out+o], D[(r+1)*out+o], D[(r+2)*out+o], D[(r+3)*out+o] = acc[0], acc[1], acc[2], acc[3]
					}
				}
				for ; r < n; r++ {
					for o := t0; o < t1; o++ {
						D[r*out+o] = dotF16(X[r*in:(r+1)*in], W[o*in:(o+1)*in])
					}
				}
			}
		})
	case backend.NF4:
		q := ww.Q
		if c.half {
			// fp16 compute follows bitsandbytes' compute_dtype=float16: each
			// weight is dequantized in float32, rounded to half, then
			// multiplied (float32 accumulation), as the GPU's tensor-core
			// paths must do.
			c.parallel(out, n*in, tileRows, func(wk, lo, hi int) {
				tile := c.buf(wk, tileRows*in)
				for t0 := lo; t0 < hi; t0 += tileRows {
					t1 := min(t0+tileRows, hi)
					tl := tile[:(t1-t0)*in]
					dequantizeRows(tl, q, t0, t1)
					c.round16(tl)
					tileDots(D, X, tl, n, in, out, t0, t1)
				}
			})
			break
		}
		if haveNF4Kernels && useAVX2 && in%16 == 0 {
			c.nf4MatMulAVX2(D, X, q, n)
			break
		}
		if n == 1 && in%nf4.BlockSize == 0 {
			c.parallel(out, in, 1, func(_, lo, hi int) { nf4MatVec(D, X, q, lo, hi) })
			break
		}
		c.parallel(out, n*in, tileRows, func(wk, lo, hi int) {
			tile := c.buf(wk, tileRows*in)
			for t0 := lo; t0 < hi; t0 += tileRows {
				t1 := min(t0+tileRows, hi)
				dequantizeRows(tile[:(t1-t0)*in], q, t0, t1)
				tileDots(D, X, tile, n, in, out, t0, t1)
			}
		})
	default:
		panic(fmt.Sprintf("cpu: MatMul: weight dtype %v", ww.dt))
	}
	c.round16(D)
}

// tileDots sets D[r, o] = X[r] · tile[o-t0] for all tokens r and weight
// rows o in [t0, t1), four tokens at a time so that each weight load
// serves four products.
func tileDots(D, X, tile []float32, n, in, out, t0, t1 int) {
	var acc [4]float32
	r := 0
	for ; r+4 <= n; r += 4 {
		for o := t0; o < t1; o++ {
			dot4(tile[(o-t0)*in:(o-t0+1)*in], X[r*in:], in, &acc)
			D[r*out+o], D[(r+1)*out+o], D[(r+2)*out+o], D[(r+3)*out+o] = acc[0], acc[1], acc[2], acc[3]
		}
	}
	for ; r < n; r++ {
		xr := X[r*in : (r+1)*in]
		dr := D[r*out : (r+1)*out]
		for o := t0; o < t1; o++ {
			dr[o] = dot(xr, tile[(o-t0)*in:(o-t0+1)*in])
		}
	}
}

// nf4Code is the NF4 code table the assembly kernels read.
var nf4Code = nf4.Code

// nf4MatMulAVX2 is MatMul for an NF4 weight whose rows are a multiple of
// 16 long, with the assembly kernels: x is deinterleaved once (the kernels
// read even and odd elements separately), then one token dots each row
// group by group, and several tokens share tiles of decoded rows. Rows may
// start and end inside a block of 64 (hidden sizes such as 160).
func (c *CPU) nf4MatMulAVX2(D, X []float32, q *nf4.Tensor, n int) {
	in, out := q.Cols, q.Rows
	nb := in / 16 // groups per row
	if cap(c.xd) < n*in {
		c.xd = make([]float32, n*in)
	}
	xd := c.xd[:n*in]
	for r := 0; r < n; r++ {
		deinterleave16(xd[r*in:(r+1)*in], X[r*in:(r+1)*in])
	}
	if n == 1 {
		c.parallel(out, in, 1, func(wk, lo, hi int) {
			am := c.buf(wk, nb)
			for o := lo; o < hi; o++ {
				rowAbsmax(q, o, am)
				D[o] = nf4Dot(q.Packed[o*in/2:(o+1)*in/2], xd, am)
			}
		})
		return
	}
	c.parallel(out, n*in, tileRows, func(wk, lo, hi int) {
		s := c.buf(wk, tileRows*in+nb)
		tile, am := s[:tileRows*in], s[tileRows*in:]
		for t0 := lo; t0 < hi; t0 += tileRows {
			t1 := min(t0+tileRows, hi)
			for o := t0; o < t1; o++ {
				rowAbsmax(q, o, am)
				nf4Decode(q.Packed[o*in/2:(o+1)*in/2], am, tile[(o-t0)*in:(o-t0+1)*in])
			}
			tileDots(D, xd, tile, n, in, out, t0, t1)
		}
	})
}

// rowAbsmax writes the dequantized absmax of each group of 16 weights of
// row o into am (len(am) = Cols/16).
func rowAbsmax(q *nf4.Tensor, o int, am []float32) {
	j := o * q.Cols
	b, last := -1, float32(0)
	for k := range am {
		if bk := (j + 16*k) / nf4.BlockSize; bk != b {
			b, last = bk, q.Absmax(bk)
		}
		am[k] = last
	}
}

// deinterleave16 writes each group of 16 values of src as its 8 even then
// its 8 odd elements, the order the NF4 kernels decode weights in.
func deinterleave16(dst, src []float32) {
	for g := 0; g+16 <= len(src); g += 16 {
		for i := 0; i < 8; i++ {
			dst[g+i] = src[g+2*i]
			dst[g+8+i] = src[g+2*i+1]
		}
	}
}

// pairs maps a packed byte to the NF4 codes of its two elements.
var pairs = func() (p [256][2]float32) {
	for b := range p {
		p[b] = [2]float32{nf4.Code[b>>4], nf4.Code[b&15]}
	}
	return p
}()

// nf4MatVec computes D[o] = x · dequant(w[o]) for o in [lo, hi), for one
// token and rows that are a whole number of blocks: per block the 64 codes
// are decoded into a buffer, dotted with x, and scaled by the block's
// absmax once.
func nf4MatVec(D, x []float32, q *nf4.Tensor, lo, hi int) {
	in := q.Cols
	nb := in / nf4.BlockSize
	var codes [nf4.BlockSize]float32
	for o := lo; o < hi; o++ {
		packed := q.Packed[o*in/2 : (o+1)*in/2]
		var acc float32
		for kb := 0; kb < nb; kb++ {
			p := packed[kb*32 : kb*32+32]
			for i, b := range p {
				*(*[2]float32)(codes[2*i:]) = pairs[b]
			}
			acc += q.Absmax(o*nb+kb) * dot(codes[:], x[kb*64:kb*64+64])
		}
		D[o] = acc
	}
}

// dequantizeRows writes rows [r0, r1) of q, dequantized, into dst.
func dequantizeRows(dst []float32, q *nf4.Tensor, r0, r1 int) {
	in := q.Cols
	if in%nf4.BlockSize == 0 {
		nb := in / nf4.BlockSize
		for o := r0; o < r1; o++ {
			row := dst[(o-r0)*in : (o-r0+1)*in]
			packed := q.Packed[o*in/2 : (o+1)*in/2]
			for kb := 0; kb < nb; kb++ {
				am := q.Absmax(o*nb + kb)
				p := packed[kb*32 : kb*32+32]
				blk := row[kb*64 : kb*64+64]
				for i, b := range p {
					pr := &pairs[b]
					blk[2*i] = pr[0] * am
					blk[2*i+1] = pr[1] * am
				}
			}
		}
		return
	}
	for j := r0 * in; j < r1*in; j++ { // blocks straddle rows
		dst[j-r0*in] = nf4.Code[q.Index(j)] * q.Absmax(j/nf4.BlockSize)
	}
}

func dims2(what string, t *Tensor) (int, int) {
	if len(t.shape) != 2 {
		panic(fmt.Sprintf("cpu: %s: want 2 dims, got %v", what, t.shape))
	}
	return t.shape[0], t.shape[1]
}
