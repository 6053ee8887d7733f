// The reference experiment on the in-repo world, or on any model and
// adapters given by the environment:
//
//	LORAMIX_MODEL     checkpoint folder or hub id (default: datasets/world/base)
//	LORAMIX_ADAPTERS  NAME=DIR,NAME=DIR (default: the world's fren, oasst and clash)
//	LORAMIX_TOKENIZER tokenizer.json when the model has none beside it
//	LORAMIX_DATA      folder holding datasets/build (default: the repository)
//	LORAMIX_LIMIT     examples per task (default: 120; 0 for all)
//	LORAMIX_QUANT     nf4, fp16 or fp32 (default: fp32 for the in-repo world, whose
//	                  160-wide layers lose too much to NF4 — see the README —
//	                  and nf4, the reference experiment's setting, for any other model)
//	LORAMIX_DEVICE    cpu (default) or cuda (a test binary built with -tags cuda);
//	                  under ginkgo -p, process i uses GPU i-1 modulo the GPU count
//
// The adapters named fren and oasst play the translation and chat roles;
// one named clash, if given, the clashing-format role.
package reference_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/llama"
	"loramix/suites/eval"
	"loramix/suites/gate"
	"loramix/suites/results"
	"loramix/suites/scenario"
)

func TestReference(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Reference Experiment Suite")
}

// DefaultLimit keeps the suite within CI's time on 2 cores.
const DefaultLimit = 120

// BaselineTolerance is how far a metric may move from the committed
// baseline: 10% relative, or 2 BLEU / chrF points, or 2 words.
const BaselineTolerance = "0.1,bleu=2,chrf=2,length_words=2"

// DeployedSystem is the combination the bad-merge gate stands in for.
const DeployedSystem = "cat[1,1](fren,oasst)"

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// input builds the scenario input from the environment, once per process.
var input = func() func() scenario.Input {
	var in *scenario.Input
	return func() scenario.Input {
		if in != nil {
			return *in
		}
		root := scenario.RepoRoot()
		world := filepath.Join(root, "datasets", "world")
		def := []string{"fren=" + filepath.Join(world, "adapters", "fren"), "oasst=" + filepath.Join(world, "adapters", "oasst"),
			"clash=" + filepath.Join(world, "adapters", "clash")}
		specs := def
		if v := os.Getenv("LORAMIX_ADAPTERS"); v != "" {
			specs = strings.Split(v, ",")
		}
		ads, err := eval.ParseNamedDirs(specs)
		Expect(err).NotTo(HaveOccurred(), "LORAMIX_ADAPTERS")
		limit, err := strconv.Atoi(env("LORAMIX_LIMIT", strconv.Itoa(DefaultLimit)))
		Expect(err).NotTo(HaveOccurred(), "LORAMIX_LIMIT")
		defQuant := "fp32"
		if os.Getenv("LORAMIX_MODEL") != "" {
			defQuant = "nf4"
		}
		q, err := llama.ParseQuant(env("LORAMIX_QUANT", defQuant))
		Expect(err).NotTo(HaveOccurred(), "LORAMIX_QUANT")
		tok := os.Getenv("LORAMIX_TOKENIZER")
		if tok == "" {
			tok = filepath.Join(root, ".cache", "tokenizer", "tokenizer.json")
		}
		roles := scenario.Roles{Translation: "fren", Chat: "oasst", TranslationTask: "fren", ChatTask: "oasst"}
		for _, a := range ads {
			if a.Name == "clash" {
				roles.Clash, roles.ClashTask = "clash", "clash"
			}
		}
		model := env("LORAMIX_MODEL", filepath.Join(world, "base"))
		if _, err := os.Stat(filepath.Join(model, "tokenizer.json")); err == nil {
			tok = "" // the model's own tokenizer wins
		}
		in = &scenario.Input{
			Config: eval.Config{Model: model, Tokenizer: tok, Adapters: ads, Quant: q,
				Device: env("LORAMIX_DEVICE", "cpu"), Worker: GinkgoParallelProcess() - 1},
			Roles:    roles,
			DataRoot: env("LORAMIX_DATA", root),
			Limit:    limit,
			Expect:   scenario.DefaultExpectations,
		}
		return *in
	}
}()

var _ = Describe("merging the world's adapters", Label("merge"), func() {
	scenario.MergeProperties(input)
})

var _ = Describe("the reference experiment", Label("slow"), func() {
	scenario.ReferenceExperiment(input)
})

// The committed baseline of the in-repo world gates `make test`: every
// record in suites/reference/baseline.json must be matched within
// BaselineTolerance by a fresh evaluation. It applies to the in-repo world
// only (another model has another baseline).
var _ = Describe("the committed baseline", Label("slow", "baseline"), func() {
	var w *scenario.World
	var base *results.File
	BeforeEach(func() {
		if os.Getenv("LORAMIX_MODEL") != "" || os.Getenv("LORAMIX_ADAPTERS") != "" {
			Skip("the committed baseline is the in-repo world's; LORAMIX_MODEL/LORAMIX_ADAPTERS name another")
		}
		var err error
		w, err = scenario.Load(input())
		Expect(err).NotTo(HaveOccurred())
		base, err = results.Read(filepath.Join(scenario.RepoRoot(), "suites", "reference", "baseline.json"))
		Expect(err).NotTo(HaveOccurred())
	})
	evaluate := func(translate func(results.System) results.System) *results.File {
		GinkgoHelper()
		out := &results.File{}
		for _, b := range base.Records {
			sys := translate(b.System)
			r, err := w.Record(sys, b.Task)
			Expect(err).NotTo(HaveOccurred())
			out.Records = append(out.Records, r)
		}
		return out
	}

	It("holds every metric of every system within tolerance", func() {
		res := evaluate(func(s results.System) results.System { return s })
		tol, err := gate.ParseTolerance(BaselineTolerance)
		Expect(err).NotTo(HaveOccurred())
		rows := gate.Compare(base, res, tol)
		var table strings.Builder
		Expect(gate.WriteTable(&table, rows)).To(Succeed())
		AddReportEntry("baseline gate", table.String())
		Expect(gate.Failed(rows)).To(BeFalse(), table.String())
	})

	It("fails the gate on a deliberately bad merge, svd [0.05, 1] in place of the baseline's", func() {
		bad := evaluate(func(s results.System) results.System {
			if s.Method == "" {
				return s
			}
			return results.System{Adapters: s.Adapters, Method: "svd", Weights: []float64{0.05, 1}}
		})
		// Keep one record per task: the bad merge stands in for the deployed one.
		only := &results.File{}
		seen := map[string]bool{}
		for _, r := range bad.Records {
			if r.System.Method != "" && !seen[r.Task] {
				seen[r.Task] = true
				only.Records = append(only.Records, r)
			}
		}
		deployed := &results.File{}
		for _, b := range base.Records {
			if b.System.Key() == DeployedSystem && seen[b.Task] {
				deployed.Records = append(deployed.Records, b)
			}
		}
		Expect(deployed.Records).NotTo(BeEmpty(), "baseline has no %s records", DeployedSystem)
		tol, err := gate.ParseTolerance(BaselineTolerance)
		Expect(err).NotTo(HaveOccurred())
		rows := gate.CompareByTask(deployed, only, tol)
		var table strings.Builder
		Expect(gate.WriteTable(&table, rows)).To(Succeed())
		AddReportEntry("bad merge gate", table.String())
		Expect(gate.Failed(rows)).To(BeTrue(), table.String())
		Expect(table.String()).To(MatchRegexp(`svd\[0.05,1\]\(fren,oasst\)\s+fren\s+bleu\s.*FAIL`))
	})
})
