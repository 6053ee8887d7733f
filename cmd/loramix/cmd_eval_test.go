package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/results"
)

var _ = Describe("loramix eval and gate on the tiny checkpoint", Ordered, func() {
	var world []string
	var dir, res string

	BeforeAll(func() {
		world = sweepWorld()
		dir = GinkgoT().TempDir()
		res = filepath.Join(dir, "results.json")
	})

	It("evaluates the base, each adapter and a combination, with intervals and provenance", func() {
		args := append(append([]string{}, world...), "--combine", "base", "--combine", "mlp", "--combine", "cat:1,0.5", "--out", res, "--quiet")
		var w bytes.Buffer
		Expect(runEval(args, &w)).To(Succeed())
		Expect(w.String()).To(ContainSubstring("cat[1,0.5](mlp,attn)  echo"))
		f, err := results.Read(res)
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Records).To(HaveLen(3))
		Expect(f.GitRevision).NotTo(BeEmpty())
		Expect(f.Versions).To(HaveKey("go"))
		Expect(f.Config).To(HaveKeyWithValue("combine", ConsistOf("base", "mlp", "cat:1,0.5")))
		for _, r := range f.Records {
			Expect(r.Samples).To(Equal(6))
			Expect(r.Metrics["bleu"].CILow).To(BeNumerically("<=", r.Metrics["bleu"].Value))
		}
	})

	It("passes the gate against itself and fails it, with a table, against a better baseline", func() {
		var w bytes.Buffer
		Expect(runGateTo([]string{"--baseline", res, "--results", res}, &w)).To(Succeed())
		Expect(w.String()).To(ContainSubstring("every metric within tolerance"))

		f, err := results.Read(res)
		Expect(err).NotTo(HaveOccurred())
		m := f.Records[2].Metrics["length_words"]
		m.Value += 50
		f.Records[2].Metrics["length_words"] = m
		data, err := json.Marshal(f)
		Expect(err).NotTo(HaveOccurred())
		better := filepath.Join(dir, "better.json")
		Expect(os.WriteFile(better, data, 0o644)).To(Succeed())
		w.Reset()
		Expect(runGateTo([]string{"--baseline", better, "--results", res, "--tolerance", "0.1"}, &w)).To(MatchError(errGateFailed))
		Expect(w.String()).To(MatchRegexp(`cat\[1,0.5\]\(mlp,attn\)\s+echo\s+length_words\s.*FAIL`))
	})

	It("names what is missing or wrong", func() {
		Expect(runEval([]string{"--model", "x"}, &bytes.Buffer{})).To(MatchError(ContainSubstring("--model, --task and --out are required")))
		args := append(append([]string{}, world...), "--combine", "svd:1", "--out", res)
		Expect(runEval(args, &bytes.Buffer{})).To(MatchError(ContainSubstring("1 weights for 2 adapters")))
	})
})
