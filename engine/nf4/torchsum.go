package nf4

// torchLanes is the float32 vector width of torch's CPU kernels where the
// goldens were made (AVX2: 8 lanes; the golden offset and dynamic map pin it).
const torchLanes = 8

// torchSum reproduces the float32 summation order of torch.sum on the CPU
// for a contiguous 1-D tensor reduced by one thread (fewer than 32768
// elements; longer tensors are split across threads by torch, and only
// their last bits can differ from this order). x is read as vectors of
// lanes floats summed with rowSum's cascade, the leftover elements are
// added one by one to 0, then the lanes in order. Tensors shorter than one
// vector use the same cascade on scalars.
func torchSum(x []float32, lanes int) float32 {
	if len(x) < lanes {
		return rowSum(x, 1, len(x))[0]
	}
	nvec := len(x) / lanes
	acc := rowSum(x, lanes, nvec)
	var s float32
	for _, v := range x[nvec*lanes:] {
		s += v
	}
	for _, v := range acc {
		s += v
	}
	return s
}

// rowSum sums size vectors of width w from x with four interleaved
// accumulators (ILP), each a four-level cascade; it returns one vector.
func rowSum(x []float32, w, size int) []float32 {
	const ilp = 4
	vec := func(i int) []float32 { return x[i*w : (i+1)*w] }
	add := func(dst, src []float32) {
		for k := range dst {
			dst[k] += src[k]
		}
	}
	sizeILP := size / ilp
	parts := multiRowSum(vec, w, ilp, sizeILP)
	for i := sizeILP * ilp; i < size; i++ {
		add(parts[0], vec(i))
	}
	for k := 1; k < ilp; k++ {
		add(parts[0], parts[k])
	}
	return parts[0]
}

// multiRowSum sums rows i*nrows+k (k < nrows) of vectors for i < size into
// nrows accumulators, through levels of 2^levelPower partial sums.
func multiRowSum(vec func(int) []float32, w, nrows, size int) [][]float32 {
	const levels = 4
	levelPower := max(4, ceilLog2(size)/levels)
	step := 1 << levelPower
	mask := step - 1
	acc := make([][][]float32, levels)
	for j := range acc {
		acc[j] = make([][]float32, nrows)
		for k := range acc[j] {
			acc[j][k] = make([]float32, w)
		}
	}
	addRow := func(i int) {
		for k := 0; k < nrows; k++ {
			v := vec(i*nrows + k)
			for l := range v {
				acc[0][k][l] += v[l]
			}
		}
	}
	i := 0
	for i+step <= size {
		for j := 0; j < step; j, i = j+1, i+1 {
			addRow(i)
		}
		for j := 1; j < levels; j++ {
			for k := 0; k < nrows; k++ {
				for l := range acc[j][k] {
					acc[j][k][l] += acc[j-1][k][l]
					acc[j-1][k][l] = 0
				}
			}
			if i&(mask<<(j*levelPower)) != 0 {
				break
			}
		}
	}
	for ; i < size; i++ {
		addRow(i)
	}
	for j := 1; j < levels; j++ {
		for k := 0; k < nrows; k++ {
			for l := range acc[0][k] {
				acc[0][k][l] += acc[j][k][l]
			}
		}
	}
	return acc[0]
}

// ceilLog2 returns the smallest e with 2^e >= n (0 for n <= 1).
func ceilLog2(n int) int {
	e := 0
	for 1<<e < n {
		e++
	}
	return e
}
