package sweep_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/results"
	"loramix/suites/sweep"
)

// counter wraps an Evaluate and counts, per system key, the calls and the
// evaluations that returned records.
type counter struct {
	mu        sync.Mutex
	calls     map[string]int
	completed map[string]int
	eval      sweep.Evaluate
	// hook runs at the start of each call with its 1-based number.
	hook func(n int)
	n    int
}

func newCounter(tasks []string) *counter {
	return &counter{calls: map[string]int{}, completed: map[string]int{}, eval: sweep.Synthetic(tasks)}
}

func (c *counter) Evaluate(ctx context.Context, s results.System) ([]results.Record, error) {
	c.mu.Lock()
	c.n++
	n := c.n
	c.calls[s.Key()]++
	c.mu.Unlock()
	if c.hook != nil {
		c.hook(n)
	}
	recs, err := c.eval(ctx, s)
	if err == nil {
		c.mu.Lock()
		c.completed[s.Key()]++
		c.mu.Unlock()
	}
	return recs, err
}

// linesPerKey reads a sweep file and counts its records per (system, task).
func linesPerKey(path string) map[string]int {
	f, err := results.Read(path)
	Expect(err).NotTo(HaveOccurred())
	out := map[string]int{}
	for _, r := range f.Records {
		out[r.System.Key()+" "+r.Task]++
	}
	return out
}

var _ = Describe("Run", func() {
	var (
		tasks  = []string{"fren", "oasst"}
		points []results.System
		out    string
	)
	BeforeEach(func() {
		grid, err := sweep.ParseGrid("0:1:0.25")
		Expect(err).NotTo(HaveOccurred())
		points = sweep.Points([]string{"fren", "oasst"}, []string{"svd", "cat"}, grid) // 50 points
		out = filepath.Join(GinkgoT().TempDir(), "sweep.jsonl")
	})

	expectEveryPointOnce := func() {
		per := linesPerKey(out)
		Expect(per).To(HaveLen(len(points) * len(tasks)))
		for k, n := range per {
			Expect(n).To(Equal(1), k)
		}
	}

	It("evaluates every point once and appends its records", func() {
		c := newCounter(tasks)
		var progress bytes.Buffer
		st, err := sweep.Run(context.Background(), points, c.Evaluate, out, &progress)
		Expect(err).NotTo(HaveOccurred())
		Expect(st).To(Equal(sweep.Stats{Points: 50, Evaluated: 50}))
		expectEveryPointOnce()
		Expect(progress.String()).To(ContainSubstring("50/50"))

		By("running again, nothing is evaluated")
		st, err = sweep.Run(context.Background(), points, c.Evaluate, out, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(st).To(Equal(sweep.Stats{Points: 50, Skipped: 50}))
		Expect(c.n).To(Equal(50))
		expectEveryPointOnce()
	})

	It("resumes after a cancel that interrupts an evaluation, losing no point and doing none twice", func() {
		c := newCounter(tasks)
		ctx, cancel := context.WithCancel(context.Background())
		c.hook = func(n int) {
			if n == 17 {
				cancel() // the 17th evaluation sees a cancelled context and fails
			}
		}
		st, err := sweep.Run(ctx, points, c.Evaluate, out, nil)
		Expect(err).To(MatchError(context.Canceled))
		Expect(st.Evaluated).To(Equal(16))
		Expect(linesPerKey(out)).To(HaveLen(16 * len(tasks)))

		c.hook = nil
		st, err = sweep.Run(context.Background(), points, c.Evaluate, out, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(st).To(Equal(sweep.Stats{Points: 50, Skipped: 16, Evaluated: 34}))
		expectEveryPointOnce()
		for _, p := range points {
			Expect(c.completed[p.Key()]).To(Equal(1), p.Key())
		}
		Expect(c.n).To(Equal(51)) // 50 points plus the one interrupted call
	})

	It("keeps a point whose evaluation finished as the cancel came", func() {
		c := newCounter(tasks)
		ctx, cancel := context.WithCancel(context.Background())
		c.eval = func(ctx2 context.Context, s results.System) ([]results.Record, error) {
			recs, err := sweep.Synthetic(tasks)(ctx2, s)
			if c.n == 9 {
				cancel() // after the records exist
			}
			return recs, err
		}
		_, err := sweep.Run(ctx, points, c.Evaluate, out, nil)
		Expect(err).To(MatchError(context.Canceled))
		Expect(linesPerKey(out)).To(HaveLen(9 * len(tasks)))
		c.eval = sweep.Synthetic(tasks)
		_, err = sweep.Run(context.Background(), points, c.Evaluate, out, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(c.n).To(Equal(50))
		expectEveryPointOnce()
	})

	It("cuts a torn last line and redoes the point it may belong to", func() {
		c := newCounter(tasks)
		_, err := sweep.Run(context.Background(), points[:5], c.Evaluate, out, nil)
		Expect(err).NotTo(HaveOccurred())
		data, err := os.ReadFile(out)
		Expect(err).NotTo(HaveOccurred())
		lines := strings.SplitAfter(string(data), "\n")
		Expect(lines).To(HaveLen(11)) // 10 records and ""
		// A crash in the write of point 5: its first record whole, the second torn.
		rec5, err := sweep.Synthetic(tasks)(context.Background(), points[4])
		Expect(err).NotTo(HaveOccurred())
		first, _ := json.Marshal(rec5[0])
		second, _ := json.Marshal(rec5[1])
		torn := strings.Join(lines[:8], "") + string(first) + "\n" + string(second[:40])
		Expect(os.WriteFile(out, []byte(torn), 0o644)).To(Succeed())

		st, err := sweep.Run(context.Background(), points, c.Evaluate, out, nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(st).To(Equal(sweep.Stats{Points: 50, Skipped: 4, Evaluated: 46}))
		expectEveryPointOnce()
		Expect(os.ReadFile(out)).To(HaveSuffix("\n"))
	})

	It("refuses a file another sweep holds", func() {
		f, err := os.Create(out)
		Expect(err).NotTo(HaveOccurred())
		defer f.Close()
		Expect(syscall.Flock(int(f.Fd()), syscall.LOCK_EX)).To(Succeed())
		_, err = sweep.Run(context.Background(), points, newCounter(tasks).Evaluate, out, nil)
		Expect(err).To(MatchError(ContainSubstring("another sweep is writing it")))
	})

	It("names the line of a file that is not a sweep", func() {
		Expect(os.WriteFile(out, []byte("{\"system\":{},\"task\":\"x\"}\nnot json\n{}\n"), 0o644)).To(Succeed())
		_, err := sweep.Run(context.Background(), points, newCounter(tasks).Evaluate, out, nil)
		Expect(err).To(MatchError(ContainSubstring("sweep.jsonl: line 2")))
	})

	It("names the point whose evaluation fails or returns another system", func() {
		bad := func(ctx context.Context, s results.System) ([]results.Record, error) {
			return []results.Record{{System: results.System{Adapters: []string{"x"}}, Task: "fren"}}, nil
		}
		_, err := sweep.Run(context.Background(), points, bad, out, nil)
		Expect(err).To(MatchError(ContainSubstring("point svd[0,0](fren,oasst): evaluation returned a record for x")))
		none := func(ctx context.Context, s results.System) ([]results.Record, error) { return nil, nil }
		_, err = sweep.Run(context.Background(), points, none, out, nil)
		Expect(err).To(MatchError(ContainSubstring("no records")))
	})

	It("writes a file results.Read reads, even with one point", func() {
		_, err := sweep.Run(context.Background(), points[:1], sweep.Synthetic([]string{"fren"}), out, nil)
		Expect(err).NotTo(HaveOccurred())
		f, err := results.Read(out)
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Records).To(HaveLen(1))
		Expect(f.Records[0].Metrics).To(HaveKey("bleu"))
	})
})
