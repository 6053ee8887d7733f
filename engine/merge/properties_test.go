package merge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"gonum.org/v1/gonum/mat"

	"loramix/engine/adapter"
	"loramix/engine/dtype"
	"loramix/engine/safetensors"
)

// exactSum returns sum_i w_i s_i B_i A_i for one module (out, in).
func exactSum(ads []*adapter.Adapter, ws []float64, module string) *mat.Dense {
	var sum *mat.Dense
	for i, a := range ads {
		m, ok := a.Modules[module]
		if !ok {
			continue
		}
		d := delta(m)
		d.Scale(ws[i], d)
		if sum == nil {
			sum = d
		} else {
			sum.Add(sum, d)
		}
	}
	return sum
}

var _ = Describe("merge properties", func() {
	var g *golden
	BeforeEach(func() { g = theGolden() })
	pair := func(x, y string) []*adapter.Adapter { return []*adapter.Adapter{g.inputs[x], g.inputs[y]} }

	It("cat and exact linear equal the true weighted sum, with unequal ranks and partial targets", func() {
		ads := []*adapter.Adapter{g.inputs["a"], g.inputs["b"], g.inputs["c"]}
		ws := []float64{1, -0.5, 0.3}
		for _, o := range []Options{{Method: Cat, Weights: ws}, {Method: Linear, Weights: ws, Exact: true}} {
			res, err := Merge(ads, o)
			Expect(err).NotTo(HaveOccurred())
			Expect(res.Rank).To(Equal(20))
			for name, m := range res.Adapter.Modules {
				want := exactSum(ads, ws, name)
				if !o.Exact && m.RSLoRA {
					want.Scale(math.Sqrt(20), want)
				}
				Expect(relErr(delta(m), want)).To(BeNumerically("<", 1e-6), name)
			}
		}
	})

	It("exact svd is the truncated SVD of the true sum, even when the first adapter uses rsLoRA", func() {
		ads := pair("c", "a")
		ws := []float64{1, 0.5}
		res, err := Merge(ads, Options{Method: SVDMethod, Weights: ws, Exact: true, SVDRank: 16})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Adapter.Config.UseRSLoRA).To(BeFalse())
		for name, m := range res.Adapter.Modules {
			Expect(m.Scaling()).To(Equal(1.0))
			Expect(relErr(delta(m), exactSum(ads, ws, name))).To(BeNumerically("<", 1e-6), name)
		}
		Expect(res.TruncRelErr).To(BeNumerically("<", 1e-6)) // rank 16 holds the whole sum
		peft, err := Merge(ads, Options{Method: SVDMethod, Weights: ws, SVDRank: 16})
		Expect(err).NotTo(HaveOccurred())
		m := peft.Adapter.Modules["model.layers.0.self_attn.q_proj"]
		Expect(m.Scaling()).To(BeNumerically("~", 4, 1e-12), "PEFT 0.21 overscales by sqrt(r) here")
	})

	It("reports linear's relative error against the exact sum", func() {
		ads := pair("a", "d")
		ws := []float64{0.5, 1}
		res, err := Merge(ads, Options{Method: Linear, Weights: ws})
		Expect(err).NotTo(HaveOccurred())
		var num, den float64
		for name, m := range res.Adapter.Modules {
			want := exactSum(ads, ws, name)
			var d mat.Dense
			d.Sub(delta(m), want)
			num += math.Pow(mat.Norm(&d, 2), 2)
			den += math.Pow(mat.Norm(want, 2), 2)
		}
		Expect(res.LinearRelErr).To(BeNumerically("~", math.Sqrt(num/den), 1e-9))
		Expect(res.LinearRelErr).To(BeNumerically(">", 0.1), "cross terms make linear inexact")
		one, err := Merge(ads[:1], Options{Method: SVDMethod, Weights: []float64{0.7}})
		Expect(err).NotTo(HaveOccurred())
		Expect(one.Method).To(Equal(Linear))
		// one adapter: linear is exact (the Gram-trace estimate bottoms out near 1e-8)
		Expect(one.LinearRelErr).To(BeNumerically("<", 1e-7))
	})

	It("an svd merge with svd_rank >= the stacked rank reproduces the sum; a smaller one reports its truncation", func() {
		ads := pair("a", "d")
		ws := []float64{1, -0.2}
		res, err := Merge(ads, Options{Method: SVDMethod, Weights: ws, SVDRank: 16})
		Expect(err).NotTo(HaveOccurred())
		for name, m := range res.Adapter.Modules {
			Expect(relErr(delta(m), exactSum(ads, ws, name))).To(BeNumerically("<", 1e-6))
			Expect(res.Spectra[name]).To(HaveLen(16))
		}
		small, err := Merge(ads, Options{Method: SVDMethod, Weights: ws, SVDRank: 4})
		Expect(err).NotTo(HaveOccurred())
		var num, den float64
		for name, m := range small.Adapter.Modules {
			want := exactSum(ads, ws, name)
			var d mat.Dense
			d.Sub(delta(m), want)
			num += math.Pow(mat.Norm(&d, 2), 2)
			den += math.Pow(mat.Norm(want, 2), 2)
		}
		Expect(small.TruncRelErr).To(BeNumerically("~", math.Sqrt(num/den), 1e-6))
	})

	It("the low-rank and full-matrix svd merges agree within 1e-5", func() {
		ads := []*adapter.Adapter{g.inputs["a"], g.inputs["d"], g.inputs["c"]}
		o := Options{Method: SVDMethod, Weights: []float64{0.5, -1, 1}, SVDRank: 6}
		low, err := Merge(ads, o)
		Expect(err).NotTo(HaveOccurred())
		o.FullMatrix = true
		full, err := Merge(ads, o)
		Expect(err).NotTo(HaveOccurred())
		for name, m := range low.Adapter.Modules {
			Expect(relErr(delta(m), delta(full.Adapter.Modules[name]))).To(BeNumerically("<", 1e-5), name)
		}
	})

	It("is independent of the number of goroutines", func() {
		o := Options{Method: DareTies, Weights: []float64{1, 0.5}, Density: 0.4, Seed: 9}
		a, err := Merge(pair("a", "d"), o)
		Expect(err).NotTo(HaveOccurred())
		b, err := Merge(pair("a", "d"), o)
		Expect(err).NotTo(HaveOccurred())
		for name, m := range a.Adapter.Modules {
			Expect(m.A).To(Equal(b.Adapter.Modules[name].A))
			Expect(m.B).To(Equal(b.Adapter.Modules[name].B))
		}
	})
})

var _ = Describe("DARE", func() {
	var g *golden
	BeforeEach(func() { g = theGolden() })

	It("keeps about density of the entries and rescales them by 1/density", func() {
		rng := rand.New(rand.NewPCG(1, 2))
		t := make([]float64, 100000)
		for i := range t {
			t[i] = rng.NormFloat64()
		}
		for _, d := range []float64{0.1, 0.5, 0.9} {
			out := randomPrune(t, d, rand.New(rand.NewPCG(3, 4)))
			kept := 0
			for i, v := range out {
				if v != 0 {
					kept++
					Expect(v).To(Equal(t[i] / d))
				}
			}
			n := float64(len(t))
			sigma := math.Sqrt(n * d * (1 - d))
			Expect(math.Abs(float64(kept)-d*n)).To(BeNumerically("<", 4*sigma), "density %v", d)
		}
		Expect(randomPrune(t, 1, nil)).To(Equal(t), "density 1 prunes nothing and does not rescale")
	})

	It("gives the same merge for the same seed and a different one for another seed", func() {
		ads := []*adapter.Adapter{g.inputs["a"], g.inputs["d"]}
		for _, m := range []Method{DareLinear, DareTies, DareLinearSVD, DareTiesSVD} {
			o := Options{Method: m, Weights: []float64{1, 0.5}, Density: 0.5, Seed: 42}
			x, err := Merge(ads, o)
			Expect(err).NotTo(HaveOccurred())
			y, err := Merge(ads, o)
			Expect(err).NotTo(HaveOccurred())
			o.Seed = 43
			z, err := Merge(ads, o)
			Expect(err).NotTo(HaveOccurred())
			name := "model.layers.1.mlp.down_proj"
			Expect(x.Adapter.Modules[name].A).To(Equal(y.Adapter.Modules[name].A), string(m))
			Expect(x.Adapter.Modules[name].A).NotTo(Equal(z.Adapter.Modules[name].A), string(m))
		}
	})

	It("averages to the linear merge over many seeds (the rescaling is unbiased)", func() {
		ads := []*adapter.Adapter{g.inputs["a"], g.inputs["d"]}
		ws := []float64{0.5, 1}
		lin, err := Merge(ads, Options{Method: Linear, Weights: ws})
		Expect(err).NotTo(HaveOccurred())
		// Every entry of every module's A: each is a sum of independent rescaled
		// Bernoulli terms, whose standard error over n draws is
		// sqrt(sum_i (wA_i a_i)^2 (1-d)/d / n); with d = 0.5, (1-d)/d = 1.
		const n = 300
		names := lin.Adapter.ModuleNames()
		means := map[string][]float64{}
		for _, name := range names {
			means[name] = make([]float64, len(lin.Adapter.Modules[name].A))
		}
		for s := uint64(0); s < n; s++ {
			res, err := Merge(ads, Options{Method: DareLinear, Weights: ws, Density: 0.5, Seed: s})
			Expect(err).NotTo(HaveOccurred())
			for _, name := range names {
				for i, v := range res.Adapter.Modules[name].A {
					means[name][i] += float64(v) / n
				}
			}
		}
		var z2 float64
		var dof int
		for _, name := range names {
			want := lin.Adapter.Modules[name].A
			for i := range want {
				var v float64
				for k, a := range ads {
					x := math.Sqrt(ws[k]*a.Modules[name].Scaling()) * float64(a.Modules[name].A[i])
					v += x * x
				}
				z := (means[name][i] - float64(want[i])) / math.Sqrt(v/n)
				z2 += z * z
				dof++
			}
		}
		// chi-square over dof entries: mean 1 per entry, sd sqrt(2/dof) ≈ 0.024
		Expect(dof).To(BeNumerically(">", 3000))
		Expect(z2 / float64(dof)).To(BeNumerically("~", 1, 0.1))
	})

	It("matches PEFT element by element: each merged entry is a possible draw", func() {
		// dare_linear on A: each entry is sum over a subset S of the adapters of
		// wA_i a_i / density; dare_ties: the mean over S of the entries of the
		// majority sign. Both PEFT's stored merge and loramix's must be such draws.
		for _, typ := range []string{"dare_linear", "dare_ties"} {
			var c goldenCase
			for _, x := range g.cases {
				if x.Type == typ && x.Group == "ad" && x.Weights[0] == 0.5 && x.MajoritySign == "total" {
					c = x
				}
			}
			Expect(c.ID).NotTo(BeEmpty())
			ads := g.adapters(c)
			ours, err := Merge(ads, c.options())
			Expect(err).NotTo(HaveOccurred())
			name := "model.layers.1.self_attn.v_proj"
			peftA, _, _ := g.file.Float32(c.ID + "/" + name + "/A")
			for _, got := range [][]float32{peftA, ours.Adapter.Modules[name].A} {
				zeros := 0
				for i, v := range got {
					cands := dareCandidates(ads, c, name, i, typ == "dare_ties")
					Expect(nearestGap(float64(v), cands)).To(BeNumerically("<", 1e-6), "%s entry %d", typ, i)
					if v == 0 {
						zeros++
					}
				}
				d := *c.Density
				frac := float64(zeros) / float64(len(got))
				if typ == "dare_linear" { // both dropped: (1-d)^2
					Expect(frac).To(BeNumerically("~", (1-d)*(1-d), 0.05))
				}
			}
		}
	})
})

// dareCandidates lists every value a DARE merge of A can take at index i.
func dareCandidates(ads []*adapter.Adapter, c goldenCase, module string, i int, ties bool) []float64 {
	d := *c.Density
	var xs, ws []float64
	for k, a := range ads {
		m := a.Modules[module]
		ws = append(ws, math.Copysign(math.Sqrt(math.Abs(c.Weights[k]*m.Scaling())), c.Weights[k]*m.Scaling()))
		xs = append(xs, float64(m.A[i])/d)
	}
	var out []float64
	for mask := 0; mask < 1<<len(xs); mask++ {
		var sum, total float64
		var n int
		for k := range xs {
			if mask&(1<<k) != 0 {
				total += xs[k]
			}
		}
		for k := range xs {
			if mask&(1<<k) == 0 {
				continue
			}
			if ties && (xs[k] >= 0) != (total >= 0) {
				continue
			}
			sum += ws[k] * xs[k]
			n++
		}
		if ties && n > 0 {
			sum /= float64(n)
		}
		out = append(out, sum)
	}
	return out
}

func nearestGap(v float64, cands []float64) float64 {
	best := math.Inf(1)
	for _, c := range cands {
		best = math.Min(best, math.Abs(v-c)/math.Max(math.Abs(c), 1e-3))
	}
	return best
}

var _ = Describe("bad input", func() {
	var g *golden
	BeforeEach(func() { g = theGolden() })

	DescribeTable("errors name the field",
		func(ads []string, o Options, field string) {
			var in []*adapter.Adapter
			for _, n := range ads {
				in = append(in, g.inputs[n])
			}
			_, err := Merge(in, o)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
		},
		Entry("unequal ranks for linear", []string{"a", "b"}, Options{Method: Linear, Weights: []float64{1, 1}}, "r="),
		Entry("unequal ranks for ties", []string{"a", "b"}, Options{Method: Ties, Weights: []float64{1, 1}, Density: 0.5}, "equal ranks"),
		Entry("unknown type", []string{"a", "d"}, Options{Method: "average", Weights: []float64{1, 1}}, "combination_type"),
		Entry("too few weights", []string{"a", "d"}, Options{Method: Cat, Weights: []float64{1}}, "weights"),
		Entry("too many weights", []string{"a", "d"}, Options{Method: Cat, Weights: []float64{1, 2, 3}}, "weights"),
		Entry("NaN weight", []string{"a", "d"}, Options{Method: Cat, Weights: []float64{1, math.NaN()}}, "weights[1]"),
		Entry("negative density", []string{"a", "d"}, Options{Method: Ties, Weights: []float64{1, 1}, Density: -0.1}, "density"),
		Entry("no density for ties", []string{"a", "d"}, Options{Method: Ties, Weights: []float64{1, 1}}, "density"),
		Entry("zero density for DARE", []string{"a", "d"}, Options{Method: DareLinear, Weights: []float64{1, 1}}, "density"),
		Entry("bad majority sign", []string{"a", "d"}, Options{Method: Ties, Weights: []float64{1, 1}, Density: 0.5, MajoritySign: "mean"}, "majority_sign_method"),
		Entry("clamp outside (0, 1]", []string{"a", "d"}, Options{Method: SVDMethod, Weights: []float64{1, 1}, SVDClamp: 1.5}, "svd_clamp"),
		Entry("svd_rank above the module size", []string{"a", "d"}, Options{Method: SVDMethod, Weights: []float64{1, 1}, SVDRank: 40}, "svd_rank"),
		Entry("exact with ties", []string{"a", "d"}, Options{Method: Ties, Weights: []float64{1, 1}, Density: 0.5, Exact: true}, "exact"),
		Entry("no adapters", []string{}, Options{Method: Cat}, "no adapters"),
	)

	It("refuses a module whose factors do not match its shape", func() {
		bad := *g.inputs["a"]
		bad.Modules = map[string]*adapter.Module{}
		for n, m := range g.inputs["a"].Modules {
			c := *m
			bad.Modules[n] = &c
		}
		bad.Modules["model.layers.0.self_attn.q_proj"].A = bad.Modules["model.layers.0.self_attn.q_proj"].A[:10]
		_, err := Merge([]*adapter.Adapter{&bad, g.inputs["d"]}, Options{Method: Cat, Weights: []float64{1, 1}})
		Expect(err).To(MatchError(ContainSubstring("model.layers.0.self_attn.q_proj")))
	})

	It("refuses a mix of list and regex target_modules", func() {
		re := *g.inputs["d"]
		re.Config.TargetModules = adapter.TargetModules{Regex: ".*q_proj"}
		_, err := Merge([]*adapter.Adapter{g.inputs["a"], &re}, Options{Method: Cat, Weights: []float64{1, 1}})
		Expect(err).To(MatchError(ContainSubstring("target_modules")))
		both := re
		res, err := Merge([]*adapter.Adapter{&re, &both}, Options{Method: Cat, Weights: []float64{1, 1}})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Adapter.Config.TargetModules.Regex).To(Equal("(.*q_proj)|(.*q_proj)"))
	})
})

var _ = Describe("the written adapter", func() {
	var g *golden
	BeforeEach(func() { g = theGolden() })

	It("round-trips through adapter.Save, with PEFT's config fields and key names", func() {
		for _, id := range []string{"ac-cat-1_1-density0.3", "ca-svd-1_-0.5-density0.5", "ad-linear-0.5_1-density0.5"} {
			var c goldenCase
			for _, x := range g.cases {
				if x.ID == id {
					c = x
				}
			}
			res, err := Merge(g.adapters(c), c.options())
			Expect(err).NotTo(HaveOccurred())
			dir := filepath.Join(GinkgoT().TempDir(), "out")
			Expect(adapter.Save(dir, res.Adapter)).To(Succeed())
			back, err := readPEFT(dir)
			Expect(err).NotTo(HaveOccurred())
			Expect(back.ModuleNames()).To(Equal(res.Adapter.ModuleNames()))
			for name, m := range back.Modules {
				Expect(m.A).To(Equal(res.Adapter.Modules[name].A))
				Expect(m.B).To(Equal(res.Adapter.Modules[name].B))
			}
			// the config, key by key, against what PEFT's save_pretrained wrote
			ours := readJSON(filepath.Join(dir, "adapter_config.json"))
			peft := readJSON(filepath.Join("testdata/peft_saved", id, "adapter_config.json"))
			for k, v := range peft {
				if k == "target_modules" {
					Expect(sortedStrings(ours[k])).To(Equal(sortedStrings(v)))
					continue
				}
				Expect(ours).To(HaveKey(k), "%s: %s", id, k)
				oj, _ := json.Marshal(ours[k])
				pj, _ := json.Marshal(v)
				Expect(string(oj)).To(Equal(string(pj)), "%s: %s", id, k)
			}
			// and the same tensor names and shapes (PEFT's are float64 here: the
			// reference merges in float64), ours float32
			f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
			Expect(err).NotTo(HaveOccurred())
			for _, t := range f.Tensors() {
				Expect(t.DType).To(Equal(dtype.F32), t.Name)
			}
			f.Close()
			Expect(tensorShapes(filepath.Join(dir, "adapter_model.safetensors"))).
				To(Equal(tensorShapes(filepath.Join("testdata/peft_saved", id, "adapter_model.safetensors"))))
		}
	})

	It("checks the modules before writing anything", func() {
		bad := &adapter.Adapter{Modules: map[string]*adapter.Module{
			"m": {Name: "m", R: 2, In: 3, Out: 4, A: make([]float32, 6), B: make([]float32, 7)}}}
		dir := filepath.Join(GinkgoT().TempDir(), "out")
		Expect(adapter.Save(dir, bad)).To(MatchError(ContainSubstring("module m")))
		_, err := os.Stat(dir)
		Expect(os.IsNotExist(err)).To(BeTrue())
	})
})

func readJSON(path string) map[string]any {
	buf, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	var m map[string]any
	Expect(json.Unmarshal(buf, &m)).To(Succeed())
	return m
}

func tensorShapes(path string) map[string][]int {
	f, err := safetensors.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	out := map[string][]int{}
	for _, t := range f.Tensors() {
		out[t.Name] = t.Shape
	}
	return out
}

var _ = Describe("the committed loramix outputs (testdata/loramix_out)", func() {
	It("load with adapter.Load and match PEFT's merges", func() {
		g := theGolden()
		dirs, err := os.ReadDir("testdata/loramix_out")
		Expect(err).NotTo(HaveOccurred())
		Expect(len(dirs)).To(BeNumerically(">=", 15))
		for _, d := range dirs {
			var c goldenCase
			for _, x := range g.cases {
				if x.ID == d.Name() {
					c = x
				}
			}
			Expect(c.ID).To(Equal(d.Name()))
			a, err := adapter.Load(filepath.Join("testdata/loramix_out", c.ID))
			Expect(err).NotTo(HaveOccurred())
			Expect(a.Config.R).To(Equal(int(c.Config["r"].(float64))))
			Expect(a.ModuleNames()).To(ConsistOf(c.Modules))
			if !c.Stored || Method(c.Type).IsDARE() {
				continue
			}
			worst := 0.0
			for _, m := range a.Modules {
				worst = math.Max(worst, relErr(delta(m), g.peftDelta(c, m)))
			}
			GinkgoWriter.Printf("%s: %.3g\n", c.ID, worst)
			Expect(worst).To(BeNumerically("<", 1e-5), c.ID)
		}
	})
})

var _ = Describe("the test inputs", func() {
	It("read the same through adapter.Load as through the tests' own reader", func() {
		g := theGolden()
		for n, mine := range g.inputs {
			a, err := adapter.Load(filepath.Join("testdata/inputs", n))
			Expect(err).NotTo(HaveOccurred())
			Expect(a.Config.R).To(Equal(mine.Config.R))
			Expect(a.Config.UseRSLoRA).To(Equal(mine.Config.UseRSLoRA))
			Expect(a.ModuleNames()).To(Equal(mine.ModuleNames()))
			for name, m := range a.Modules {
				Expect(m.Scaling()).To(Equal(mine.Modules[name].Scaling()))
				Expect(m.A).To(Equal(mine.Modules[name].A))
				Expect(m.B).To(Equal(mine.Modules[name].B))
			}
		}
	})
})
