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
// are decoded once and reused for every token.
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
				for r := 0; r < n; r++ {
					xr := X[r*in : (r+1)*in]
					dr := D[r*out : (r+1)*out]
					for o := t0; o < t1; o++ {
						dr[o] = dot(xr, W[o*in:(o+1)*in])
					}
				}
			}
		})
	case backend.F16:
		W := ww.F16
		c.parallel(out, n*in, tileRows, func(wk, lo, hi int) {
			tile := c.buf(wk, tileRows*in)
			for t0 := lo; t0 < hi; t0 += tileRows {
				t1 := min(t0+tileRows, hi)
				for i, h := range W[t0*in : t1*in] {
					tile[i] = f16[h]
				}
				tileDots(D, X, tile, n, in, out, t0, t1)
			}
		})
	case backend.NF4:
		q := ww.Q
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

// tileDots sets D[r, o] = X[r] · tile[o-t0] for all tokens r and rows o in [t0, t1).
func tileDots(D, X, tile []float32, n, in, out, t0, t1 int) {
	for r := 0; r < n; r++ {
		xr := X[r*in : (r+1)*in]
		dr := D[r*out : (r+1)*out]
		for o := t0; o < t1; o++ {
			dr[o] = dot(xr, tile[(o-t0)*in:(o-t0+1)*in])
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
// token and in a multiple of 64: per block, sum code*x, then scale by the
// block's absmax once.
func nf4MatVec(D, x []float32, q *nf4.Tensor, lo, hi int) {
	in := q.Cols
	nb := in / nf4.BlockSize
	for o := lo; o < hi; o++ {
		packed := q.Packed[o*in/2 : (o+1)*in/2]
		var acc float32
		for kb := 0; kb < nb; kb++ {
			p := packed[kb*32 : kb*32+32]
			xs := x[kb*64 : kb*64+64]
			var s0, s1, s2, s3 float32
			for i := 0; i < 32; i += 2 {
				a, b := &pairs[p[i]], &pairs[p[i+1]]
				s0 += a[0] * xs[2*i]
				s1 += a[1] * xs[2*i+1]
				s2 += b[0] * xs[2*i+2]
				s3 += b[1] * xs[2*i+3]
			}
			acc += q.Absmax(o*nb+kb) * ((s0 + s1) + (s2 + s3))
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

// dot returns a · b[:len(a)] with four partial sums.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		s0 += a[i]*b[i] + a[i+4]*b[i+4]
		s1 += a[i+1]*b[i+1] + a[i+5]*b[i+5]
		s2 += a[i+2]*b[i+2] + a[i+6]*b[i+6]
		s3 += a[i+3]*b[i+3] + a[i+7]*b[i+7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func dims2(what string, t *Tensor) (int, int) {
	if len(t.shape) != 2 {
		panic(fmt.Sprintf("cpu: %s: want 2 dims, got %v", what, t.shape))
	}
	return t.shape[0], t.shape[1]
}
