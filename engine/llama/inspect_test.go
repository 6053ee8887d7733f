package llama_test

import (
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/checkpoint"
	"loramix/engine/llama"
)

var _ = Describe("InspectNF4", func() {
	It("reports the round-trip error and the footprint of every decoder linear layer", func() {
		dir := filepath.Join(tinyDir, "llama-gqa")
		cfg, err := checkpoint.LoadConfig(dir)
		Expect(err).NotTo(HaveOccurred())
		w, err := checkpoint.OpenWeights(dir)
		Expect(err).NotTo(HaveOccurred())
		defer w.Close()
		r, err := llama.InspectNF4(cfg, w)
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Layers).To(HaveLen(7 * cfg.NumHiddenLayers))
		for _, l := range r.Layers {
			// NF4 of Gaussian-like weights loses about 9-10% (relative Frobenius).
			Expect(l.RelErr).To(BeNumerically("~", 0.095, 0.02), l.Name)
			blocks := (l.Rows*l.Cols + 63) / 64
			Expect(l.NF4Bytes).To(Equal(int64((l.Rows*l.Cols+1)/2 + blocks + 4*((blocks+255)/256) + 4)))
			Expect(l.SourceBytes).To(Equal(int64(4 * l.Rows * l.Cols)))
		}
		Expect(r.BitsPerParam).To(BeNumerically("~", 4.2, 0.1))
		// embeddings and lm_head (384 x 64 each), three norms per layer pair and the final norm, F32
		Expect(r.OtherBytes).To(Equal(int64(4 * (2*384*64 + (2*cfg.NumHiddenLayers+1)*64))))
		Expect(r.TotalBytes).To(Equal(r.LinearNF4Bytes + r.OtherBytes))
	})
})
