// Command mkdatasets builds the reference world's corpora from Debian into a
// folder (default datasets/build): French→English pairs, chat dialogues,
// pretraining text and manifest.json. `make datasets` runs it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"

	"loramix/datasets"
)

func main() {
	out := flag.String("out", "datasets/build", "output folder")
	pkgs := flag.String("packages", "datasets/packages.txt", "file listing the packages whose French catalogs are read")
	refresh := flag.Bool("refresh", false, "run apt-get update even when the lists are present")
	flag.Parse()
	list, err := readList(*pkgs)
	if err == nil {
		var man *datasets.Manifest
		man, err = datasets.Build(datasets.Config{OutDir: *out, Packages: list, Refresh: *refresh, Log: os.Stderr})
		if err == nil {
			for _, c := range []string{"fren", "fren-descriptions", "oasst", "clash"} {
				fmt.Printf("%-18s train %6d  dev %5d  test %5d\n", c, man.Counts[c]["train"], man.Counts[c]["dev"], man.Counts[c]["test"])
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdatasets:", err)
		os.Exit(1)
	}
}

// readList reads package names, one a line; '#' starts a comment.
func readList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			names = append(names, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no package names", path)
	}
	return names, nil
}
