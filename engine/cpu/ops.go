package cpu

import (
	"fmt"
	"math"

	"loramix/engine/backend"
	"loramix/engine/dtype"
)

// Rows gathers dst[i] = src[idx[i]].
func (c *CPU) Rows(dst, src, idx backend.Tensor) {
	d, s, ix := ct(dst), ct(src), ct(idx)
	m, width := dims2("Rows src", s)
	n := len(ix.I32)
	if d.dt != backend.F32 || len(d.F32) != n*width || ix.dt != backend.I32 {
		panic(fmt.Sprintf("cpu: Rows: dst %v %v, src %v %v, idx %v %v", d.dt, d.shape, s.dt, s.shape, ix.dt, ix.shape))
	}
	for i, r := range ix.I32 {
		if r < 0 || int(r) >= m {
			panic(fmt.Sprintf("cpu: Rows: index %d out of range [0, %d)", r, m))
		}
		row := d.F32[i*width : (i+1)*width]
		switch s.dt {
		case backend.F32:
			copy(row, s.F32[int(r)*width:])
		case backend.F16:
			for j, h := range s.F16[int(r)*width : (int(r)+1)*width] {
				row[j] = f16[h]
			}
		default:
			panic(fmt.Sprintf("cpu: Rows: src dtype %v", s.dt))
		}
	}
}

// AddLoRA adds scale * (x @ aᵀ) @ bᵀ to the listed rows of dst.
func (c *CPU) AddLoRA(dst, x, a, b backend.Tensor, scale float32, rows backend.Tensor) {
	d, xx, A, B := ct(dst), ct(x), ct(a), ct(b)
	n, in := dims2("AddLoRA x", xx)
	r, ain := dims2("AddLoRA a", A)
	out, br := dims2("AddLoRA b", B)
	if ain != in || br != r || len(d.F32) != n*out || A.dt != backend.F32 || B.dt != backend.F32 {
		panic(fmt.Sprintf("cpu: AddLoRA: dst %v, x %v, a %v, b %v", d.shape, xx.shape, A.shape, B.shape))
	}
	var idx []int32
	if rows != nil {
		idx = ct(rows).I32
		for _, i := range idx {
			if i < 0 || int(i) >= n {
				panic(fmt.Sprintf("cpu: AddLoRA: row %d out of range [0, %d)", i, n))
			}
		}
	}
	k := n
	if idx != nil {
		k = len(idx)
	}
	row := func(j int) int {
		if idx == nil {
			return j
		}
		return int(idx[j])
	}
	if cap(c.lora) < k*r {
		c.lora = make([]float32, k*r)
	}
	tmp := c.lora[:k*r] // (k, r)
	c.parallel(k, r*in, 1, func(_, lo, hi int) {
		for j := lo; j < hi; j++ {
			xr := xx.F32[row(j)*in : (row(j)+1)*in]
			for i := 0; i < r; i++ {
				tmp[j*r+i] = dot(xr, A.F32[i*in:(i+1)*in])
			}
		}
	})
	c.round16(tmp)
	c.parallel(out, k*r, 1, func(_, lo, hi int) {
		for j := 0; j < k; j++ {
			dr := d.F32[row(j)*out : (row(j)+1)*out]
			tj := tmp[j*r : (j+1)*r]
			for o := lo; o < hi; o++ {
				dr[o] += c.r16(dot(tj, B.F32[o*r:(o+1)*r]) * scale)
			}
		}
	})
	c.round16(d.F32)
}

// RMSNorm computes dst[i] = x[i] / sqrt(mean(x[i]²) + eps) * w.
func (c *CPU) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	d, xx, ww := ct(dst), ct(x), ct(w)
	n, dim := dims2("RMSNorm x", xx)
	if len(d.F32) != n*dim || backend.Elements(ww.shape) != dim {
		panic(fmt.Sprintf("cpu: RMSNorm: dst %v, x %v, w %v", d.shape, xx.shape, ww.shape))
	}
	wf := c.weight32(ww)
	for i := 0; i < n; i++ {
		xr := xx.F32[i*dim : (i+1)*dim]
		var ss float64
		for _, v := range xr {
			ss += float64(v) * float64(v)
		}
		v := float32(ss/float64(dim)) + eps
		inv := float32(1 / math.Sqrt(float64(v)))
		dr := d.F32[i*dim : (i+1)*dim]
		for j, v := range xr {
			dr[j] = wf[j] * c.r16(v*inv)
		}
	}
	c.round16(d.F32)
}

// weight32 returns a small weight (a norm) as float32.
func (c *CPU) weight32(t *Tensor) []float32 {
	switch t.dt {
	case backend.F32:
		return t.F32
	case backend.F16:
		out := make([]float32, len(t.F16))
		for i, h := range t.F16 {
			out[i] = f16[h]
		}
		return out
	}
	panic(fmt.Sprintf("cpu: weight dtype %v", t.dt))
}

// ropeTable caches cos and sin of every (position, pair) seen so far.
type ropeTable struct {
	theta, posScale float32
	half            int
	cos, sin        []float32 // (positions, half)
}

func (c *CPU) rope(theta, posScale float32, half, maxPos int) *ropeTable {
	t := c.ropeT
	if t == nil || t.theta != theta || t.posScale != posScale || t.half != half {
		t = &ropeTable{theta: theta, posScale: posScale, half: half}
		c.ropeT = t
	}
	have := len(t.cos) / half
	if maxPos < have {
		return t
	}
	want := max(2*have, maxPos+1, 64)
	inv := make([]float32, half)
	for j := range inv {
		// Hugging Face: 1 / theta^(2j/dim) in float32, divided by the linear factor.
		e := float32(2*j) / float32(2*half)
		inv[j] = float32(float32(1)/float32(math.Pow(float64(theta), float64(e)))) * posScale
	}
	for p := have; p < want; p++ {
		for j := 0; j < half; j++ {
			a := float64(float32(float32(p) * inv[j]))
			t.cos = append(t.cos, float32(math.Cos(a)))
			t.sin = append(t.sin, float32(math.Sin(a)))
		}
	}
	return t
}

// RoPE rotates x in place, pairs (j, j+headDim/2) of each head.
func (c *CPU) RoPE(x, pos backend.Tensor, heads int, theta, posScale float32) {
	xx, p := ct(x), ct(pos)
	n, width := dims2("RoPE x", xx)
	if len(p.I32) != n || width%heads != 0 || (width/heads)%2 != 0 {
		panic(fmt.Sprintf("cpu: RoPE: x %v, pos %v, heads %d", xx.shape, p.shape, heads))
	}
	hd := width / heads
	half := hd / 2
	maxPos := int32(0)
	for _, q := range p.I32 {
		if q < 0 {
			panic(fmt.Sprintf("cpu: RoPE: negative position %d", q))
		}
		maxPos = max(maxPos, q)
	}
	t := c.rope(theta, posScale, half, int(maxPos))
	for i := 0; i < n; i++ {
		cs := t.cos[int(p.I32[i])*half:][:half]
		sn := t.sin[int(p.I32[i])*half:][:half]
		for h := 0; h < heads; h++ {
			v := xx.F32[i*width+h*hd:][:hd]
			for j := 0; j < half; j++ {
				a, b := v[j], v[j+half]
				v[j] = float32(a*cs[j]) - float32(b*sn[j])
				v[j+half] = float32(b*cs[j]) + float32(a*sn[j])
			}
		}
	}
	c.round16(xx.F32)
}

// Attention stores k, v in the caches, then attends causally per slot.
func (c *CPU) Attention(dst, q, k, v, kc, vc, seq, pos backend.Tensor, heads, kvHeads int) {
	d, Q, K, V, KC, VC, S, P := ct(dst), ct(q), ct(k), ct(v), ct(kc), ct(vc), ct(seq), ct(pos)
	n, qw := dims2("Attention q", Q)
	if len(KC.shape) != 3 || heads%kvHeads != 0 || qw%heads != 0 {
		panic(fmt.Sprintf("cpu: Attention: q %v, kc %v, heads %d/%d", Q.shape, KC.shape, heads, kvHeads))
	}
	slots, maxLen, kvw := KC.shape[0], KC.shape[1], KC.shape[2]
	hd := qw / heads
	if kvw != kvHeads*hd || len(K.F32) != n*kvw || len(V.F32) != n*kvw || len(d.F32) != n*qw ||
		len(S.I32) != n || len(P.I32) != n || backend.Elements(VC.shape) != slots*maxLen*kvw {
		panic(fmt.Sprintf("cpu: Attention: dst %v q %v k %v v %v kc %v vc %v seq %v pos %v heads %d/%d",
			d.shape, Q.shape, K.shape, V.shape, KC.shape, VC.shape, S.shape, P.shape, heads, kvHeads))
	}
	var work int
	for i := 0; i < n; i++ {
		s, p := int(S.I32[i]), int(P.I32[i])
		if s < 0 || s >= slots || p < 0 || p >= maxLen {
			panic(fmt.Sprintf("cpu: Attention: token %d at slot %d position %d outside cache (%d, %d)", i, s, p, slots, maxLen))
		}
		off := (s*maxLen + p) * kvw
		store(KC, off, K.F32[i*kvw:(i+1)*kvw])
		store(VC, off, V.F32[i*kvw:(i+1)*kvw])
		work += (p + 1) * hd * 2
	}
	group := heads / kvHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	c.parallel(n*heads, work/n/heads+1, 1, func(wk, lo, hi int) {
		buf := c.buf(wk, maxLen+2*hd)
		for it := lo; it < hi; it++ {
			i, h := it/heads, it%heads
			s, p := int(S.I32[i]), int(P.I32[i])
			g := h / group
			qh := Q.F32[i*qw+h*hd:][:hd]
			scores := buf[:p+1]
			krow, vrow := buf[maxLen:maxLen+hd], buf[maxLen+hd:maxLen+2*hd]
			mx := float32(math.Inf(-1))
			for t := 0; t <= p; t++ {
				off := (s*maxLen+t)*kvw + g*hd
				sc := dot(qh, load(KC, off, krow)) * scale
				scores[t] = sc
				mx = max(mx, sc)
			}
			var sum float64
			for t := range scores {
				e := float32(math.Exp(float64(scores[t] - mx)))
				scores[t] = e
				sum += float64(e)
			}
			inv := float32(1 / sum)
			out := d.F32[i*qw+h*hd:][:hd]
			clear(out)
			for t, e := range scores {
				w := e * inv
				vr := load(VC, (s*maxLen+t)*kvw+g*hd, vrow)
				for j, x := range vr {
					out[j] += w * x
				}
			}
		}
	})
	c.round16(d.F32)
}

// store writes src into cache t at element offset off.
func store(t *Tensor, off int, src []float32) {
	switch t.dt {
	case backend.F32:
		copy(t.F32[off:off+len(src)], src)
	case backend.F16:
		for j, v := range src {
			t.F16[off+j] = dtype.F32ToF16(v)
		}
	default:
		panic(fmt.Sprintf("cpu: cache dtype %v", t.dt))
	}
}

// load returns len(tmp) cache values at offset off, converted into tmp if
// the cache is F16, else as a sub-slice of the cache.
func load(t *Tensor, off int, tmp []float32) []float32 {
	if t.dt == backend.F32 {
		return t.F32[off : off+len(tmp)]
	}
	for j := range tmp {
		tmp[j] = f16[t.F16[off+j]]
	}
	return tmp
}

// SiLUMul computes dst = silu(gate) * up.
func (c *CPU) SiLUMul(dst, gate, up backend.Tensor) {
	d, g, u := ct(dst), ct(gate), ct(up)
	if len(d.F32) != len(g.F32) || len(u.F32) != len(g.F32) {
		panic(fmt.Sprintf("cpu: SiLUMul: dst %v, gate %v, up %v", d.shape, g.shape, u.shape))
	}
	c.parallel(len(d.F32), 8, 1024, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			x := g.F32[i]
			s := c.r16(x / float32(1+math.Exp(-float64(x))))
			d.F32[i] = s * u.F32[i]
		}
	})
	c.round16(d.F32)
}

// Add computes dst = a + b.
func (c *CPU) Add(dst, a, b backend.Tensor) {
	d, x, y := ct(dst), ct(a), ct(b)
	if len(d.F32) != len(x.F32) || len(y.F32) != len(x.F32) {
		panic(fmt.Sprintf("cpu: Add: dst %v, a %v, b %v", d.shape, x.shape, y.shape))
	}
	for i := range d.F32 {
		d.F32[i] = x.F32[i] + y.F32[i]
	}
	c.round16(d.F32)
}

// r16 rounds one value to half precision when computing in F16.
func (c *CPU) r16(v float32) float32 {
	if !c.half {
		return v
	}
	return f16[dtype.F32ToF16(v)]
}
