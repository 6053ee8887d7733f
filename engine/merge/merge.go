// Package merge combines LoRA adapters the way PEFT 0.21.0's
// LoraModel.add_weighted_adapter does, with every combination type, and adds
// an exact mode and an SVD that never forms the full (out, in) update.
//
// Semantics (delta_i = s_i B_i A_i, s_i the adapter's scaling for the module,
// w_i the user's weight):
//
//   - cat: A = [w_1 s_1 A_1; w_2 s_2 A_2; ...], B = [B_1 B_2 ...], zero-padded
//     to the sum of the adapters' ranks; the update is exactly sum_i w_i delta_i.
//   - linear, ties, dare_linear, dare_ties, magnitude_prune: the rule is applied
//     to the A's and the B's separately, with weights sign(w_i s_i)
//     sqrt(|w_i s_i|) on A and sqrt(|w_i s_i|) on B. With two or more adapters
//     the product carries cross terms B_i A_j. All adapters need the same r.
//   - svd, ties_svd, dare_linear_svd, dare_ties_svd, magnitude_prune_svd: the
//     rule is applied to the full deltas with weights w_i, and the result is
//     replaced by its rank-k truncated SVD (k = svd_rank, or the largest input
//     rank): B = U_k diag(S_k), A = Vt_k, optionally clamped (svd_clamp).
//   - The new adapter has r = lora_alpha = the new rank, the union of the
//     target modules, empty rank and alpha patterns, and every other config
//     field from the first adapter. PEFT 0.21.0 keeps use_rslora from the
//     first adapter too, so that the merged update is then sqrt(r) times the
//     one computed above; loramix reproduces that, except in exact mode.
//   - One adapter alone is always merged with linear.
//
// A module that only some adapters adapt is merged from those alone.
//
// PEFT's svd_full_matrices and svd_driver only change how torch computes the
// SVD, not the kept components, so they have no counterpart here. The merged
// adapter holds the union of the inputs' modules; PEFT would instead inject
// the union of target_modules into the base model, which differs only when
// the first adapter's layers_to_transform excludes a layer another adapter
// adapts.
//
// The svd family on full deltas (ties_svd, dare_*_svd, magnitude_prune_svd,
// or FullMatrix) runs gonum's dense SVD of each (out, in) delta: exact, but
// minutes per module at Llama-2-7B size. The plain svd merge never forms the
// delta (see LowRankSVD).
package merge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"

	"gonum.org/v1/gonum/mat"

	"loramix/engine/adapter"
)

// Method is a PEFT combination_type.
type Method string

// The combination types of PEFT 0.21.0's add_weighted_adapter.
const (
	Cat               Method = "cat"
	Linear            Method = "linear"
	SVDMethod         Method = "svd"
	Ties              Method = "ties"
	TiesSVD           Method = "ties_svd"
	DareLinear        Method = "dare_linear"
	DareTies          Method = "dare_ties"
	DareLinearSVD     Method = "dare_linear_svd"
	DareTiesSVD       Method = "dare_ties_svd"
	MagnitudePrune    Method = "magnitude_prune"
	MagnitudePruneSVD Method = "magnitude_prune_svd"
)

// Methods lists every combination type.
var Methods = []Method{Cat, Linear, SVDMethod, Ties, TiesSVD, DareLinear, DareTies, DareLinearSVD,
	DareTiesSVD, MagnitudePrune, MagnitudePruneSVD}

// IsSVD reports whether m ends in an SVD of the full delta.
func (m Method) IsSVD() bool { return strings.HasSuffix(string(m), "svd") }

// IsDARE reports whether m draws random masks.
func (m Method) IsDARE() bool { return strings.HasPrefix(string(m), "dare") }

// needsDensity reports whether m prunes (and so needs Options.Density).
func (m Method) needsDensity() bool {
	return m != Cat && m != Linear && m != SVDMethod
}

// equalRanks reports whether PEFT requires all adapters to share r for m.
func (m Method) equalRanks() bool {
	switch m {
	case Linear, Ties, DareLinear, DareTies, MagnitudePrune:
		return true
	}
	return false
}

func (m Method) rule() rule {
	switch m {
	case Ties, TiesSVD:
		return ruleTies
	case DareLinear, DareLinearSVD:
		return ruleDareLinear
	case DareTies, DareTiesSVD:
		return ruleDareTies
	case MagnitudePrune, MagnitudePruneSVD:
		return ruleMagnitudePrune
	}
	return ruleTaskArithmetic
}

// Options are add_weighted_adapter's arguments, plus loramix's own.
type Options struct {
	Method  Method
	Weights []float64 // one per adapter; negative weights subtract

	// SVDRank is the rank of an SVD merge; 0 means the largest input rank.
	SVDRank int
	// SVDClamp, when set (in (0, 1]), clamps the SVD factors to the
	// SVDClamp-quantile of their entries, as PEFT's svd_clamp does. It
	// depends on the signs of the singular vectors, which an SVD leaves free:
	// loramix fixes them (see SVD) and PEFT takes LAPACK's.
	SVDClamp float64
	// Density is the fraction kept by ties, dare and magnitude_prune, in
	// (0, 1]; those methods require it. Values >= 1 prune nothing.
	Density float64
	// MajoritySign is "total" (the default when empty) or "frequency".
	MajoritySign string
	// Seed seeds DARE's random masks: the same seed gives the same merge.
	Seed uint64

	// Exact makes linear, cat and svd merges follow the true weighted sum
	// sum_i w_i s_i B_i A_i: linear and cat write it in cat form (lossless,
	// rank = sum of ranks), svd writes its truncated SVD. The merged adapter
	// gets use_rslora = false, so its scaling is exactly 1.
	Exact bool
	// FullMatrix makes SVD merges form the (out, in) delta and run gonum's
	// full SVD instead of the low-rank path (for checks; the result agrees
	// within rounding).
	FullMatrix bool
	// CompareLinear computes Result.LinearRelErr for any method (it is
	// always computed for linear and exact merges).
	CompareLinear bool
	// Name is the merged adapter's name (Adapter.Name).
	Name string
}

// Result is a merged adapter and what the merge measured.
type Result struct {
	Adapter *adapter.Adapter
	Method  Method  // the method used (PEFT turns a lone adapter's merge into linear)
	Rank    int     // the new adapter's r
	Alpha   float64 // and its lora_alpha
	// LinearRelErr is ||linear - exact||_F / ||exact||_F over all modules,
	// where linear is PEFT's linear merge of the same adapters and weights
	// and exact is sum_i w_i s_i B_i A_i. It is NaN unless the method is
	// linear, Exact or CompareLinear is set, and the adapters' ranks are
	// equal. Its floor is about 1e-8 (it is computed from Gram matrices).
	LinearRelErr float64
	// TruncRelErr is the relative Frobenius error of an svd merge's
	// truncation, over all modules, from the dropped singular values (NaN for
	// other methods).
	TruncRelErr float64
	// Spectra holds each module's singular values for svd merges.
	Spectra map[string][]float64
}

// Merge combines adapters with opts. Errors name the offending option,
// adapter or module.
func Merge(ads []*adapter.Adapter, opts Options) (*Result, error) {
	if len(ads) == 0 {
		return nil, fmt.Errorf("merge: no adapters")
	}
	if len(opts.Weights) != len(ads) {
		return nil, fmt.Errorf("merge: weights: %d values for %d adapters", len(opts.Weights), len(ads))
	}
	method := opts.Method
	if !slicesContains(Methods, method) {
		return nil, fmt.Errorf("merge: combination_type %q is not one of %s", method, methodList())
	}
	if len(ads) == 1 {
		method = Linear // PEFT: a single adapter can only be merged linearly
	}
	if err := checkOptions(method, opts); err != nil {
		return nil, err
	}
	for i, a := range ads {
		for _, m := range a.Modules {
			if m.R <= 0 || len(m.A) != m.R*m.In || len(m.B) != m.Out*m.R {
				return nil, fmt.Errorf("merge: adapter %s: module %s: A/B do not match r=%d, in=%d, out=%d",
					adName(a, i), m.Name, m.R, m.In, m.Out)
			}
		}
	}

	ranks := make([]int, len(ads))
	for i, a := range ads {
		ranks[i] = adapterRank(a)
	}
	var newRank int
	switch {
	case opts.Exact && (method == Linear || method == Cat):
		newRank = sum(ranks)
	case method.equalRanks():
		for i, r := range ranks {
			if r != ranks[0] {
				return nil, fmt.Errorf("merge: r: combination_type %s needs equal ranks, but adapter %s has r=%d and adapter %s has r=%d",
					method, adName(ads[0], 0), ranks[0], adName(ads[i], i), r)
			}
		}
		newRank = ranks[0]
	case method == Cat:
		newRank = sum(ranks)
	default: // the svd family
		newRank = opts.SVDRank
		if newRank == 0 {
			newRank = maxInt(ranks)
		}
	}
	targets, err := unionTargets(ads)
	if err != nil {
		return nil, err
	}

	cfg := ads[0].Config // PEFT: dataclasses.replace(config of the first adapter, ...)
	cfg.R = newRank
	cfg.LoraAlpha = float64(newRank)
	cfg.TargetModules = targets
	cfg.RankPattern = map[string]int{}
	cfg.AlphaPattern = map[string]float64{}
	cfg.Extra = cloneMap(cfg.Extra)
	if opts.Exact {
		cfg.UseRSLoRA = false
	}
	out := &adapter.Adapter{Name: opts.Name, Config: cfg, Modules: map[string]*adapter.Module{}}
	res := &Result{Adapter: out, Method: method, Rank: newRank, Alpha: float64(newRank),
		LinearRelErr: math.NaN(), TruncRelErr: math.NaN()}

	names := moduleUnion(ads)
	jobs := make([]moduleJob, len(names))
	for i, name := range names {
		jobs[i] = moduleJob{name: name}
		for k, a := range ads {
			if m, ok := a.Modules[name]; ok {
				jobs[i].mods = append(jobs[i].mods, m)
				jobs[i].weights = append(jobs[i].weights, opts.Weights[k])
			}
		}
		m0 := jobs[i].mods[0]
		for _, m := range jobs[i].mods[1:] {
			if m.In != m0.In || m.Out != m0.Out {
				return nil, fmt.Errorf("merge: module %s: shapes differ between adapters: (%d, %d) and (%d, %d)",
					name, m0.Out, m0.In, m.Out, m.In)
			}
			if method.equalRanks() && !opts.Exact && m.R != m0.R {
				return nil, fmt.Errorf("merge: module %s: r differs between adapters (%d and %d); %s needs equal ranks",
					name, m0.R, m.R, method)
			}
		}
	}
	wantLinearErr := (method == Linear || opts.Exact || opts.CompareLinear) && allEqual(ranks)

	c := mergeCtx{method: method, opts: opts, newRank: newRank, rslora: cfg.UseRSLoRA,
		peftRSLoRA: ads[0].Config.UseRSLoRA, linearErr: wantLinearErr}
	parallel(len(jobs), func(i int) { c.run(&jobs[i]) })

	var linNum, linDen, trNum, trDen float64
	for i := range jobs {
		j := &jobs[i]
		if j.err != nil {
			return nil, j.err
		}
		out.Modules[j.name] = j.result
		linNum += j.linNum
		linDen += j.linDen
		if j.svd != nil {
			if res.Spectra == nil {
				res.Spectra = map[string][]float64{}
			}
			res.Spectra[j.name] = j.svd.S
			for k, v := range j.svd.S {
				trDen += v * v
				if k >= j.svd.K {
					trNum += v * v
				}
			}
		}
	}
	if wantLinearErr && linDen > 0 {
		res.LinearRelErr = math.Sqrt(linNum / linDen)
	}
	if res.Spectra != nil && trDen > 0 {
		res.TruncRelErr = math.Sqrt(trNum / trDen)
	}
	// Modules whose rank differs from r (possible only with rank patterns in
	// the inputs) get their own pattern entries so that the output loads.
	for name, m := range out.Modules {
		if m.R != newRank {
			cfg.RankPattern[name] = m.R
			cfg.AlphaPattern[name] = m.Alpha
		}
	}
	out.Config = cfg
	return res, nil
}

func checkOptions(method Method, o Options) error {
	for i, w := range o.Weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("merge: weights[%d] is %v", i, w)
		}
	}
	if o.SVDRank < 0 {
		return fmt.Errorf("merge: svd_rank %d is negative", o.SVDRank)
	}
	if o.SVDClamp != 0 && !(o.SVDClamp > 0 && o.SVDClamp <= 1) {
		return fmt.Errorf("merge: svd_clamp %v is not a quantile in (0, 1]", o.SVDClamp)
	}
	if method.needsDensity() {
		// PEFT requires a density for these (None fails); 0 would prune
		// everything (and DARE would divide by it), so loramix asks for > 0.
		if !(o.Density > 0) {
			return fmt.Errorf("merge: density %v: %s needs a density in (0, 1] (values >= 1 prune nothing)", o.Density, method)
		}
	}
	switch o.MajoritySign {
	case "", "total", "frequency":
	default:
		return fmt.Errorf("merge: majority_sign_method %q is not total or frequency", o.MajoritySign)
	}
	if o.Exact && method != Linear && method != Cat && method != SVDMethod {
		return fmt.Errorf("merge: exact applies to linear, cat and svd, not %s", method)
	}
	return nil
}

// moduleJob is one module's merge: inputs, then outputs.
type moduleJob struct {
	name    string
	mods    []*adapter.Module // the adapters that adapt this module, in order
	weights []float64

	result         *adapter.Module
	svd            *SVD // for svd merges
	linNum, linDen float64
	err            error
}

type mergeCtx struct {
	method     Method
	opts       Options
	newRank    int
	rslora     bool // the merged config's use_rslora
	peftRSLoRA bool // the one PEFT would write (the first adapter's)
	linearErr  bool
}

func (c *mergeCtx) run(j *moduleJob) {
	m0 := j.mods[0]
	out, in := m0.Out, m0.In
	res := &adapter.Module{Name: j.name, R: c.newRank, Alpha: float64(c.newRank), RSLoRA: c.rslora, In: in, Out: out}
	var B, A []float64 // (out, r), (r, in)
	switch {
	case c.method == Cat || (c.opts.Exact && c.method == Linear):
		B, A = catForm(j, c.newRank)
	case c.method.IsSVD():
		svd, err := c.svdMerge(j)
		if err != nil {
			j.err = err
			return
		}
		if svd.K > c.newRank {
			panic("merge: SVD kept more components than asked")
		}
		j.svd = svd
		B, A = svd.Factors(c.newRank)
		if c.opts.SVDClamp > 0 {
			clampFactors(B, A, c.opts.SVDClamp)
		}
	default: // linear-style: the rule on A's and B's separately
		B, A = c.factorMerge(j)
		res.R = m0.R
		res.Alpha = float64(m0.R)
	}
	if c.linearErr {
		j.linNum, j.linDen = c.linearError(j)
	}
	res.A = toFloat32(A)
	res.B = toFloat32(B)
	j.result = res
}

// catForm returns B = [w_i s_i B_i] and A = [A_i] zero-padded to rank r.
// (PEFT puts w_i s_i on A; the product is the same.)
func catForm(j *moduleJob, r int) (B, A []float64) {
	out, in := j.mods[0].Out, j.mods[0].In
	B = make([]float64, out*r)
	A = make([]float64, r*in)
	off := 0
	for k, m := range j.mods {
		c := j.weights[k] * m.Scaling()
		for o := 0; o < out; o++ {
			for q := 0; q < m.R; q++ {
				B[o*r+off+q] = float64(m.B[o*m.R+q])
			}
		}
		for q := 0; q < m.R; q++ {
			row := A[(off+q)*in : (off+q+1)*in]
			for i, v := range m.A[q*in : (q+1)*in] {
				row[i] = c * float64(v)
			}
		}
		off += m.R
	}
	return B, A
}

// terms returns the module's weighted terms w_i s_i B_i A_i.
func terms(j *moduleJob) []Term {
	ts := make([]Term, len(j.mods))
	for k, m := range j.mods {
		ts[k] = Term{Coef: j.weights[k] * m.Scaling(), R: m.R, B: m.B, A: m.A}
	}
	return ts
}

func (c *mergeCtx) svdMerge(j *moduleJob) (*SVD, error) {
	m0 := j.mods[0]
	out, in := m0.Out, m0.In
	if c.newRank > min(out, in) {
		return nil, fmt.Errorf("merge: svd_rank %d exceeds module %s's smaller dimension (%d, %d)", c.newRank, j.name, out, in)
	}
	if c.method == SVDMethod && !c.opts.FullMatrix {
		return LowRankSVD(NewProduct(out, in, terms(j)), c.newRank), nil
	}
	// The full-delta path: delta_i = s_i B_i A_i, combined with weights w_i.
	deltas := make([][]float64, len(j.mods))
	for k, m := range j.mods {
		p := NewProduct(out, in, []Term{{Coef: m.Scaling(), R: m.R, B: m.B, A: m.A}})
		deltas[k] = p.Dense().RawMatrix().Data
	}
	combined := combine(c.method.rule(), deltas, j.weights, c.params(j.name, 0))
	return FullSVD(mat.NewDense(out, in, combined), c.newRank), nil
}

// factorMerge applies the method's rule to the A's and the B's separately.
func (c *mergeCtx) factorMerge(j *moduleJob) (B, A []float64) {
	n := len(j.mods)
	wa, wb := make([]float64, n), make([]float64, n)
	as, bs := make([][]float64, n), make([][]float64, n)
	for k, m := range j.mods {
		ws := j.weights[k] * m.Scaling()
		sg := 1.0
		if ws < 0 {
			sg = -1
		}
		wa[k] = sg * math.Sqrt(math.Abs(ws))
		wb[k] = math.Sqrt(math.Abs(ws))
		as[k] = toFloat64(m.A)
		bs[k] = toFloat64(m.B)
	}
	r := c.method.rule()
	A = combine(r, as, wa, c.params(j.name, 0))
	B = combine(r, bs, wb, c.params(j.name, 1))
	return B, A
}

// params returns the rule parameters for one tensor of a module; DARE's
// stream is fixed by the seed, the module name and the tensor index, so that
// results do not depend on scheduling.
func (c *mergeCtx) params(module string, tensor uint64) combineParams {
	p := combineParams{density: c.opts.Density, frequency: c.opts.MajoritySign == "frequency"}
	if c.method.IsDARE() {
		p.rng = rand.New(rand.NewPCG(c.opts.Seed, fnv64(module)^(tensor*0x9e3779b97f4a7c15+1)))
	}
	return p
}

// linearError returns ||linear - exact||_F^2 and ||exact||_F^2 for the module,
// where linear is PEFT's linear merge (scaled as the merged config scales it)
// and exact is sum_i w_i s_i B_i A_i. Both are kept low-rank: the squared
// norm of X Y is trace((X^T X)(Y Y^T)).
func (c *mergeCtx) linearError(j *moduleJob) (num, den float64) {
	m0 := j.mods[0]
	out, in := m0.Out, m0.In
	exact := NewProduct(out, in, terms(j))
	lc := mergeCtx{method: Linear, opts: c.opts}
	Bl, Al := lc.factorMerge(j)
	r := m0.R
	s := 1.0 // PEFT's merged linear adapter has alpha = r: scaling 1, or sqrt(r) under rsLoRA
	if c.peftRSLoRA {
		s = math.Sqrt(float64(r))
	}
	// X^T rows: s * Bl^T and -exact.Bt; Y rows: Al and exact.A.
	n := r + exact.R
	xt := make([]float64, n*out)
	blT := transpose(Bl, out, r)
	for i, v := range blT {
		xt[i] = s * v
	}
	for i, v := range exact.Bt {
		xt[r*out+i] = -v
	}
	y := append(append(make([]float64, 0, n*in), Al...), exact.A...)
	num = traceProduct(gram(xt, n, out), gram(y, n, in), n)
	den = traceProduct(gram(exact.Bt, exact.R, out), gram(exact.A, exact.R, in), exact.R)
	return math.Max(num, 0), math.Max(den, 0)
}

// adapterRank is PEFT's rank of an adapter for add_weighted_adapter: r, or
// the largest of r and the rank_pattern values. An adapter without a config
// r uses its largest module rank.
func adapterRank(a *adapter.Adapter) int {
	r := a.Config.R
	for _, v := range a.Config.RankPattern {
		r = max(r, v)
	}
	if r == 0 {
		for _, m := range a.Modules {
			r = max(r, m.R)
		}
	}
	return r
}

// unionTargets merges target_modules as PEFT does: the union of name lists,
// or "(re1)|(re2)|..." for regular expressions; a mix is an error.
func unionTargets(ads []*adapter.Adapter) (adapter.TargetModules, error) {
	var regex, names int
	for _, a := range ads {
		if a.Config.TargetModules.Regex != "" {
			regex++
		} else {
			names++
		}
	}
	if regex > 0 && names > 0 {
		return adapter.TargetModules{}, fmt.Errorf("merge: target_modules: adapters mix a list and a regular expression, which PEFT cannot combine")
	}
	if regex > 0 {
		parts := make([]string, len(ads))
		for i, a := range ads {
			parts[i] = "(" + a.Config.TargetModules.Regex + ")"
		}
		return adapter.TargetModules{Regex: strings.Join(parts, "|")}, nil
	}
	set := map[string]bool{}
	for _, a := range ads {
		list := a.Config.TargetModules.Names
		if len(list) == 0 { // an adapter built in code: its modules' last names
			for name := range a.Modules {
				list = append(list, name[strings.LastIndex(name, ".")+1:])
			}
		}
		for _, n := range list {
			set[n] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return adapter.TargetModules{Names: out}, nil
}

// moduleUnion lists every module adapted by any adapter, in the adapters'
// stable order (layer, then name).
func moduleUnion(ads []*adapter.Adapter) []string {
	all := &adapter.Adapter{Modules: map[string]*adapter.Module{}}
	for _, a := range ads {
		for n, m := range a.Modules {
			all.Modules[n] = m
		}
	}
	return all.ModuleNames()
}

// parallel runs f(0..n-1) on GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

func adName(a *adapter.Adapter, i int) string {
	if a.Name != "" {
		return a.Name
	}
	if a.Dir != "" {
		return a.Dir
	}
	return fmt.Sprintf("#%d", i)
}

func methodList() string {
	s := make([]string, len(Methods))
	for i, m := range Methods {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

func slicesContains(ms []Method, m Method) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func allEqual(xs []int) bool {
	for _, x := range xs {
		if x != xs[0] {
			return false
		}
	}
	return true
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func toFloat64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func toFloat32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Spectrum returns the SVD of a module's update Scaling() * B @ A, computed
// the low-rank way (never forming the (out, in) matrix); every component is
// kept, so S holds all min(r, out, in) singular values and Rank(tol) gives
// the numerical rank.
func Spectrum(m *adapter.Module) *SVD {
	return LowRankSVD(NewProduct(m.Out, m.In, []Term{{Coef: m.Scaling(), R: m.R, B: m.B, A: m.A}}), 0)
}

// RelativeDifference returns ||delta(x) - delta(y)||_F / ||delta(y)||_F for
// two modules of the same shape, from Gram matrices of their factors (no
// (out, in) matrix). Cancellation limits it to about 1e-8: below that it
// reads as 1e-8-ish noise.
func RelativeDifference(x, y *adapter.Module) float64 {
	d := NewProduct(y.Out, y.In, []Term{
		{Coef: x.Scaling(), R: x.R, B: x.B, A: x.A},
		{Coef: -y.Scaling(), R: y.R, B: y.B, A: y.A}})
	n := NewProduct(y.Out, y.In, []Term{{Coef: y.Scaling(), R: y.R, B: y.B, A: y.A}}).FrobeniusNorm()
	if n == 0 {
		return d.FrobeniusNorm()
	}
	return d.FrobeniusNorm() / n
}
