package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"loramix/suites/results"
)

// Evaluate evaluates one system and returns its records, one per task. Every
// record's System must have the same Key as the system asked for.
type Evaluate func(ctx context.Context, s results.System) ([]results.Record, error)

// Stats tells what a Run did.
type Stats struct {
	Points    int // distinct points asked for
	Skipped   int // already in the file from an earlier run
	Evaluated int // evaluated and appended by this run
}

// Run evaluates each point that outPath does not hold yet and appends its
// records to outPath (JSONL, one Record a line) as soon as they exist: one
// write and one fsync per point, so a point is in the file whole or not at
// all. An interrupted run (ctx cancelled, a crash) is resumed by calling Run
// again with the same points and file: points already in the file are
// skipped, so none is lost or evaluated twice.
//
// If the file ends in a partial line (a write torn by a crash), Run cuts that
// line and also the complete lines of the last point before it, since they
// may be the first records of the torn point; that point is evaluated again.
//
// progress, when not nil, gets a progress bar with an ETA. Run holds an
// exclusive lock on outPath; a second Run on the same file fails at once
// (shards of one sweep each write their own file). It returns ctx.Err() when
// cancelled, and the first evaluation error, naming the point.
func Run(ctx context.Context, points []results.System, evaluate Evaluate, outPath string, progress io.Writer) (Stats, error) {
	f, err := os.OpenFile(outPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return Stats{}, fmt.Errorf("%s: another sweep is writing it: %v", outPath, err)
	}
	done, err := resume(f, outPath)
	if err != nil {
		return Stats{}, err
	}

	var todo []results.System
	seen := map[string]bool{}
	st := Stats{}
	for _, p := range points {
		k := p.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		st.Points++
		if done[k] {
			st.Skipped++
			continue
		}
		todo = append(todo, p)
	}

	bar := newBar(progress, len(todo), st.Skipped)
	defer bar.Finish()
	for _, p := range todo {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		recs, err := evaluate(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, fmt.Errorf("point %s: %w", p.Key(), err)
		}
		if err := appendPoint(f, p, recs); err != nil {
			return st, fmt.Errorf("%s: point %s: %w", outPath, p.Key(), err)
		}
		st.Evaluated++
		bar.Add(1)
	}
	return st, nil
}

// resume reads the records already in f, cuts a torn tail (see Run) and
// leaves f positioned at its end. It returns the keys of the points held.
func resume(f *os.File, path string) (map[string]bool, error) {
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	end := bytes.LastIndexByte(data, '\n') + 1 // end of the last complete line
	torn := end < len(data)
	type line struct {
		key   string
		start int // byte offset in the file
	}
	var lines []line // the complete, non-blank lines
	for start, no := 0, 1; start < end; no++ {
		n := bytes.IndexByte(data[start:end], '\n')
		text := data[start : start+n]
		if len(bytes.TrimSpace(text)) > 0 {
			var r results.Record
			if err := json.Unmarshal(text, &r); err != nil {
				return nil, fmt.Errorf("%s: line %d: %v (not a sweep file?)", path, no, err)
			}
			lines = append(lines, line{r.System.Key(), start})
		}
		start += n + 1
	}
	if torn {
		// The trailing lines of the last point may belong to the torn write:
		// cut them with it.
		for k := len(lines) - 1; k >= 0 && lines[k].key == lines[len(lines)-1].key; k-- {
			end = lines[k].start
		}
		for len(lines) > 0 && lines[len(lines)-1].start >= end {
			lines = lines[:len(lines)-1]
		}
		if err := f.Truncate(int64(end)); err != nil {
			return nil, fmt.Errorf("%s: cutting a partial line: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(end), io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	done := map[string]bool{}
	for _, l := range lines {
		done[l.key] = true
	}
	return done, nil
}

// appendPoint writes all records of p in one write and syncs.
func appendPoint(f *os.File, p results.System, recs []results.Record) error {
	if len(recs) == 0 {
		return errors.New("evaluation returned no records")
	}
	var buf bytes.Buffer
	for _, r := range recs {
		if r.System.Key() != p.Key() {
			return fmt.Errorf("evaluation returned a record for %s", r.System.Key())
		}
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return err
	}
	return f.Sync()
}

func newBar(w io.Writer, n, skipped int) *progressbar.ProgressBar {
	if w == nil {
		w = io.Discard
	}
	desc := "sweep"
	if skipped > 0 {
		desc = fmt.Sprintf("sweep (%d done before)", skipped)
	}
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("points"),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}
