package metrics_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/metrics"
)

var _ = Describe("Bootstrap", Label("Metric:bleu", "Metric:chrf"), func() {
	var (
		g          *golden
		refStreams [][]string
		sysA, sysB [][]int
		chrA, chrB [][]int
	)
	BeforeEach(func() {
		g = loadGolden()
		refStreams = [][]string{refs(g, nil)}
		var err error
		sysA, err = metrics.CorpusStats(metrics.BLEU{}, hyps(g, nil), refStreams)
		Expect(err).NotTo(HaveOccurred())
		sysB, err = metrics.CorpusStats(metrics.BLEU{}, g.HypsB, refStreams)
		Expect(err).NotTo(HaveOccurred())
		chrA, err = metrics.CorpusStats(metrics.ChrF, hyps(g, nil), refStreams)
		Expect(err).NotTo(HaveOccurred())
		chrB, err = metrics.CorpusStats(metrics.ChrF, g.HypsB, refStreams)
		Expect(err).NotTo(HaveOccurred())
	})

	It("gives a 95% interval that contains the point estimate and agrees with sacreBLEU's", func() {
		for _, c := range []struct {
			m     metrics.Metric
			stats [][]int
			want  goldenCI
		}{{metrics.BLEU{}, sysA, g.Bootstrap.BLEUSingle}, {metrics.ChrF, chrA, g.Bootstrap.CHRFSingle}} {
			ci, err := metrics.Bootstrap(c.m, c.stats, metrics.DefaultResamples, metrics.DefaultSeed)
			Expect(err).NotTo(HaveOccurred())
			Expect(ci.Score).To(BeNumerically("~", c.want.Score, 1e-9))
			Expect(ci.Low).To(BeNumerically("<=", ci.Score))
			Expect(ci.High).To(BeNumerically(">=", ci.Score))
			Expect(ci.Low).To(BeNumerically("<=", ci.Mean))
			Expect(ci.High).To(BeNumerically(">=", ci.Mean))
			Expect(ci.HalfWidth).To(BeNumerically("~", 0.5*(ci.High-ci.Low), 1e-12))
			// numpy draws other resamples, so only the distribution agrees.
			Expect(ci.Mean).To(BeNumerically("~", c.want.Mean, 0.1*c.want.CI), c.m.Name())
			Expect(ci.HalfWidth).To(BeNumerically("~", c.want.CI, 0.2*c.want.CI), c.m.Name())
		}
	})

	It("is deterministic for a seed and changes with it", func() {
		a, _ := metrics.Bootstrap(metrics.BLEU{}, sysA, 200, 7)
		b, _ := metrics.Bootstrap(metrics.BLEU{}, sysA, 200, 7)
		c, _ := metrics.Bootstrap(metrics.BLEU{}, sysA, 200, 8)
		Expect(a).To(Equal(b))
		Expect(a.Mean).NotTo(Equal(c.Mean))
	})

	It("finds a clearly worse system significantly different, like sacreBLEU's paired_bs", func() {
		p, err := metrics.PairedBootstrap(metrics.BLEU{}, sysA, sysB, metrics.DefaultResamples, metrics.DefaultSeed)
		Expect(err).NotTo(HaveOccurred())
		want := g.Bootstrap.Paired.BLEU
		Expect(p.Baseline.Score).To(BeNumerically("~", want[0].Score, 1e-9))
		Expect(p.System.Score).To(BeNumerically("~", want[1].Score, 1e-9))
		Expect(p.Diff).To(BeNumerically("~", want[1].Score-want[0].Score, 1e-9))
		Expect(p.System.Mean).To(BeNumerically("~", want[1].Mean, 0.1*want[1].CI))
		Expect(p.System.HalfWidth).To(BeNumerically("~", want[1].CI, 0.2*want[1].CI))
		Expect(p.Baseline.HalfWidth).To(BeNumerically("~", want[0].CI, 0.2*want[0].CI))
		Expect(*want[1].PValue).To(BeNumerically("<", 0.01))
		Expect(p.PValue).To(BeNumerically("<", 0.01))

		pc, err := metrics.PairedBootstrap(metrics.ChrF, chrA, chrB, metrics.DefaultResamples, metrics.DefaultSeed)
		Expect(err).NotTo(HaveOccurred())
		Expect(pc.System.Score).To(BeNumerically("~", g.Bootstrap.Paired.CHRF[1].Score, 1e-9))
		Expect(pc.System.HalfWidth).To(BeNumerically("~", g.Bootstrap.Paired.CHRF[1].CI, 0.2*g.Bootstrap.Paired.CHRF[1].CI))
		Expect(pc.PValue).To(BeNumerically("<", 0.01))
	})

	It("gives identical systems p = 1 (sacreBLEU's strict count would give 1/1001)", func() {
		Expect(g.Bootstrap.Paired.SelfP).To(BeNumerically("~", 1.0/1001, 1e-12))
		p, err := metrics.PairedBootstrap(metrics.BLEU{}, sysA, sysA, metrics.DefaultResamples, metrics.DefaultSeed)
		Expect(err).NotTo(HaveOccurred())
		Expect(p.PValue).To(Equal(1.0))
		Expect(p.Diff).To(BeZero())
	})

	It("finds no significant difference when only the segment order differs", func() {
		// Same corpus score, but the resamples pair different segments.
		b := append([][]int(nil), sysA...)
		b[0], b[1] = sysA[1], sysA[0]
		p, err := metrics.PairedBootstrap(metrics.BLEU{}, sysA, b, 300, 1)
		Expect(err).NotTo(HaveOccurred())
		Expect(p.PValue).To(BeNumerically(">", 0.05))
	})

	It("rejects systems of different lengths and empty input", func() {
		_, err := metrics.PairedBootstrap(metrics.BLEU{}, sysA, sysA[1:], 10, 1)
		Expect(err).To(MatchError(ContainSubstring("baseline has 414 segments, system 413")))
		_, err = metrics.Bootstrap(metrics.BLEU{}, nil, 10, 1)
		Expect(err).To(HaveOccurred())
		_, err = metrics.CorpusBLEU([]string{"a"}, []string{"a", "b"})
		Expect(err).To(MatchError(ContainSubstring("reference stream 1 has 2 segments, hypotheses have 1")))
	})
})
