// The reference experiment on the in-repo world, or on any model and
// adapters given by the environment:
//
//	LORAMIX_MODEL     checkpoint folder or hub id (default: datasets/world/base)
//	LORAMIX_ADAPTERS  NAME=DIR,NAME=DIR (default: the world's fren, oasst and clash)
//	LORAMIX_TOKENIZER tokenizer.json when the model has none beside it
//	LORAMIX_DATA      folder holding datasets/build (default: the repository)
//	LORAMIX_LIMIT     examples per task (default: 120; 0 for all)
//	LORAMIX_QUANT     nf4 (default), fp16 or fp32
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
	"loramix/suites/scenario"
)

func TestReference(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Reference Experiment Suite")
}

// DefaultLimit keeps the suite within CI's time on 2 cores.
const DefaultLimit = 120

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
		q, err := llama.ParseQuant(env("LORAMIX_QUANT", "nf4"))
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
