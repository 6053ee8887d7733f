package main

import (
	"flag"
	"fmt"
	"os"

	"loramix/suites/metrics"
)

// `loramix bleu` scores a hypothesis file against reference files and prints
// what `sacrebleu REF... -i HYP -f text -w 2` prints (sacreBLEU 2.6.0
// numbers and signatures).
func init() {
	register("bleu", "sacreBLEU-exact BLEU/chrF: bleu --hyp FILE --ref FILE [--ref FILE2] [--sentence] [--chrf] [--chrf++]", runBLEU)
}

func runBLEU(args []string) error {
	fs := flag.NewFlagSet("bleu", flag.ContinueOnError)
	hyp := fs.String("hyp", "", "hypothesis file, one segment per line")
	var refs stringList
	fs.Var(&refs, "ref", "reference file, one segment per line (repeat for several references)")
	sentence := fs.Bool("sentence", false, "print one score per segment (one metric only)")
	chrf := fs.Bool("chrf", false, "compute chrF2 (alone, or with BLEU when --bleu is given too)")
	chrfpp := fs.Bool("chrf++", false, "compute chrF2++ (word order 2)")
	bleu := fs.Bool("bleu", false, "compute BLEU (the default when no metric flag is given)")
	width := fs.Int("width", 2, "decimals (sacrebleu's command line defaults to 1)")
	format := fs.String("format", "text", "text or json (sacrebleu's -f)")
	scoreOnly := fs.Bool("score-only", false, "print only the numbers (sacrebleu's -b)")
	confidence := fs.Bool("confidence", false, "add a bootstrap mean and 95% half-width (corpus level)")
	samples := fs.Int("confidence-n", metrics.DefaultResamples, "bootstrap resamples for --confidence")
	seed := fs.Uint64("seed", metrics.DefaultSeed, "bootstrap seed for --confidence")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *hyp == "" || len(refs) == 0 {
		return fmt.Errorf("need --hyp FILE and at least one --ref FILE")
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("--format: want text or json, got %q", *format)
	}
	if *width < 0 || *width > 10 {
		return fmt.Errorf("--width: want 0..10, got %d", *width)
	}

	o := metrics.ReportOptions{Sentence: *sentence, Width: *width, JSON: *format == "json", ScoreOnly: *scoreOnly,
		Confidence: *confidence, Samples: *samples, Seed: *seed}
	if *bleu || (!*chrf && !*chrfpp) {
		o.Metrics = append(o.Metrics, metrics.BLEU{})
	}
	if *chrf {
		o.Metrics = append(o.Metrics, metrics.ChrF)
	}
	if *chrfpp {
		o.Metrics = append(o.Metrics, metrics.ChrFPlusPlus)
	}

	hyps, err := readSegments(*hyp)
	if err != nil {
		return err
	}
	var streams [][]string
	for _, r := range refs {
		lines, err := readSegments(r)
		if err != nil {
			return err
		}
		if len(lines) != len(hyps) {
			return fmt.Errorf("%s has %d lines but %s has %d", r, len(lines), *hyp, len(hyps))
		}
		streams = append(streams, lines)
	}
	out, err := metrics.Report(hyps, streams, o)
	if err != nil {
		return err
	}
	_, err = os.Stdout.WriteString(out)
	return err
}

// readSegments reads a UTF-8 text file into segments as sacrebleu does.
func readSegments(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := metrics.SplitLines(data)
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no lines", path)
	}
	return lines, nil
}
