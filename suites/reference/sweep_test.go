package reference_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/results"
	"loramix/suites/scenario"
	"loramix/suites/sweep"
)

// A weight sweep shards across the processes of `ginkgo -p`: process k of n
// evaluates shard k-1/n into its own file in a folder that process 1 makes
// for all, and process 1 checks afterwards that the shards together hold
// every point exactly once. With one process it is the whole sweep.
var sweepDir string

var _ = SynchronizedBeforeSuite(func() []byte {
	dir, err := os.MkdirTemp("", "loramix-sweep-")
	Expect(err).NotTo(HaveOccurred())
	return []byte(dir)
}, func(dir []byte) {
	sweepDir = string(dir)
})

// sweepPoints is a small svd grid over the translation and chat adapters.
func sweepPoints() []results.System {
	grid, err := sweep.ParseGrid("0:1:0.5")
	Expect(err).NotTo(HaveOccurred())
	return sweep.Points([]string{"fren", "oasst"}, []string{"svd"}, grid)
}

// sweepLimit keeps the sweep cheap: a handful of examples per task.
const sweepLimit = 12

func shardFile(i, n int) string {
	return filepath.Join(sweepDir, fmt.Sprintf("sweep-shard-%d-of-%d.jsonl", i, n))
}

var _ = Describe("a weight sweep", Label("sweep"), func() {
	It("evaluates this process's shard of the grid", func() {
		in := input()
		in.Limit = sweepLimit
		w, err := scenario.Load(in)
		Expect(err).NotTo(HaveOccurred())
		sc, _ := GinkgoConfiguration()
		n := sc.ParallelTotal
		shard := sweep.Shard{I: GinkgoParallelProcess() - 1, N: n}
		points := shard.Take(sweepPoints())
		evaluate := func(_ context.Context, s results.System) ([]results.Record, error) {
			var out []results.Record
			for _, task := range []string{"fren", "oasst"} {
				r, err := w.Record(s, task)
				if err != nil {
					return nil, err
				}
				out = append(out, r)
			}
			return out, nil
		}
		st, err := sweep.Run(context.Background(), points, evaluate, shardFile(shard.I, shard.N), nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Points).To(Equal(len(points)))
		AddReportEntry("sweep shard", fmt.Sprintf("process %d of %d: %d points", GinkgoParallelProcess(), n, st.Points))
	})
})

var _ = SynchronizedAfterSuite(func() {}, func() {
	if sweepDir == "" {
		return
	}
	defer os.RemoveAll(sweepDir)
	sc, _ := GinkgoConfiguration()
	n := sc.ParallelTotal
	count := map[string]int{}
	for i := 0; i < n; i++ {
		if _, err := os.Stat(shardFile(i, n)); os.IsNotExist(err) {
			return // the sweep spec was filtered out of this run
		}
		f, err := results.Read(shardFile(i, n))
		Expect(err).NotTo(HaveOccurred())
		for _, r := range f.Records {
			count[r.System.Key()+"|"+r.Task]++
		}
	}
	for _, p := range sweepPoints() {
		for _, task := range []string{"fren", "oasst"} {
			Expect(count[p.Key()+"|"+task]).To(Equal(1), "point %s on %s across %d shards", p.Key(), task, n)
		}
	}
	Expect(count).To(HaveLen(2 * len(sweepPoints())))
})
