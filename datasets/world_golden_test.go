package datasets_test

import (
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/datasets/world"
	"loramix/engine/cpu"
	"loramix/engine/llama"
)

var _ = Describe("the committed world on the CPU engine", Ordered, func() {
	var model *llama.Model

	BeforeAll(func() {
		var err error
		model, err = world.Load(cpu.New(cpu.Options{Threads: 2}), llama.FP32)
		Expect(err).NotTo(HaveOccurred())
	})

	files, _ := filepath.Glob(filepath.Join("world", "goldens", "*.json"))
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		It("generates transformers' greedy tokens for "+filepath.Base(path), func() {
			g, err := world.ReadGolden(name)
			Expect(err).NotTo(HaveOccurred())
			Expect(world.Activate(model, g)).To(Succeed())
			got, err := model.Generate(g.Prompts(), llama.GenOptions{MaxNewTokens: g.MaxNew})
			Expect(err).NotTo(HaveOccurred())
			for i, c := range g.Cases {
				Expect(got[i].IDs).To(Equal(c.OutputIDs), "%s, %s prompt %d", g.Config, c.Format, i)
			}
		})
	}
})
