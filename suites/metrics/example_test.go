package metrics_test

import (
	"fmt"

	"loramix/suites/metrics"
)

func ExampleCorpusBLEU() {
	hyps := []string{"The cat sat on the mat.", "Hello world!"}
	refs := []string{"The cat is on the mat.", "Hello, world!"}
	b, err := metrics.CorpusBLEU(hyps, refs)
	if err != nil {
		panic(err)
	}
	fmt.Println(b)
	fmt.Println(b.Signature())
	c, _ := metrics.CorpusCHRF(hyps, refs)
	fmt.Println(c)
	// Output:
	// BLEU = 42.10 90.0/62.5/33.3/25.0 (BP = 0.905 ratio = 0.909 hyp_len = 10 ref_len = 11)
	// nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0
	// chrF2 = 64.44
}

func ExampleFindTextLoop() {
	l, ok := metrics.FindTextLoop("###> You are the only customer in the store.###> You are the only customer in the store.###> You are", 10, 2)
	fmt.Printf("%v %q x%d, tail %d\n", ok, l.Text, l.Count, l.Tail)
	// Output:
	// true "###> You are the only customer in the store." x2, tail 12
}
