package nf4

import "math"

// DynamicMap returns bitsandbytes' signed 8-bit dynamic quantization map,
// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256
// sorted float32 values in [-1, 1], bit for bit as torch computed them on
// the reference machine (dynamic_table.go). createDynamicMap is the same
// algorithm in Go; torch's vectorized linspace rounds the last bit of some
// entries differently, so the table, not the Go computation, is used.
func DynamicMap() [256]float32 { return dynamicMap }

var dynamicMap = func() (m [256]float32) {
	for i, b := range dynamicMapBits {
		m[i] = math.Float32frombits(b)
	}
	return m
}()

// CreateDynamicMap computes the signed dynamic map in Go (scalar float32
// linspace); its entries are within a few ulps of DynamicMap's.
func CreateDynamicMap() [256]float32 { return createDynamicMap() }

var dynamicBounds = func() (b [255]float32) {
	for i := range b {
		b[i] = (dynamicMap[i] + dynamicMap[i+1]) / 2
	}
	return b
}()

// createDynamicMap builds the signed map: for exponent i = 0..6 the 2^i
// midpoints of linspace(0.1, 1, 2^i+1), scaled by 10^(i-6), with both signs;
// then 0 and 1; sorted.
func createDynamicMap() [256]float32 {
	data := make([]float32, 0, 256)
	for i := 0; i < 7; i++ {
		items := 1<<i + 1
		bounds := linspace(0.1, 1, items)
		scale := float32(pow10(i - 6))
		for j := 0; j+1 < items; j++ {
			m := (bounds[j] + bounds[j+1]) / 2
			data = append(data, scale*m, -scale*m)
		}
	}
	data = append(data, 0, 1)
	var out [256]float32
	copy(out[:], data)
	sortFloat32(out[:])
	return out
}

// linspace is torch.linspace(start, end, steps, dtype=float32) computed
// element by element as torch's scalar path does: the first half counts up
// from start, the second half down from end, in float32.
func linspace(start, end float32, steps int) []float32 {
	out := make([]float32, steps)
	if steps == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float32(steps-1)
	half := steps / 2
	for i := range out {
		if i < half {
			out[i] = start + float32(step*float32(i))
		} else {
			out[i] = end - float32(step*float32(steps-i-1))
		}
	}
	return out
}

func pow10(e int) float64 {
	return [...]float64{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1}[e+6]
}

func sortFloat32(x []float32) {
	for i := 1; i < len(x); i++ {
		for j := i; j > 0 && x[j] < x[j-1]; j-- {
			x[j], x[j-1] = x[j-1], x[j]
		}
	}
}
