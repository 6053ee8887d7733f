package main

import (
	"fmt"
	"sort"
	"strings"
)

// benchmarks holds the `loramix bench KIND` subcommands; each registers
// itself with registerBench from its own file.
var benchmarks = map[string]command{}

func registerBench(name, summary string, run func(args []string) error) {
	if _, dup := benchmarks[name]; dup {
		panic("loramix: duplicate benchmark " + name)
	}
	benchmarks[name] = command{summary, run}
}

func init() {
	register("bench", "run a benchmark: bench KIND [flags]", func(args []string) error {
		names := make([]string, 0, len(benchmarks))
		for n := range benchmarks {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(args) == 0 {
			return fmt.Errorf("name a benchmark: %s", strings.Join(names, ", "))
		}
		b, ok := benchmarks[args[0]]
		if !ok {
			return fmt.Errorf("unknown benchmark %q (have %s)", args[0], strings.Join(names, ", "))
		}
		return b.run(args[1:])
	})
}
