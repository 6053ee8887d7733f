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
// records to outPath (a Journal) as soon as they exist. An interrupted run
// (ctx cancelled, a crash) is resumed by calling Run again with the same
// points and file: points already in the file are skipped, so none is lost
// or evaluated twice.
//
// progress, when not nil, gets a progress bar with an ETA. Shards of one
// sweep each write their own file. Run returns ctx.Err() when cancelled, and
// the first evaluation error, naming the point.
func Run(ctx context.Context, points []results.System, evaluate Evaluate, outPath string, progress io.Writer) (Stats, error) {
	j, err := OpenJournal(outPath)
	if err != nil {
		return Stats{}, err
	}
	defer j.Close()

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
		if j.Has(p) {
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
		if err := j.Append(p, recs); err != nil {
			return st, fmt.Errorf("point %s: %w", p.Key(), err)
		}
		st.Evaluated++
		bar.Add(1)
	}
	return st, nil
}

// Journal is an append-only JSONL file of Records (one a line, as
// results.Read reads them) holding whole points: all the records of a point
// go in one write followed by an fsync, so a point is in the file whole or
// not at all. A Journal holds an exclusive lock on its file; a second open
// of the same file fails at once.
type Journal struct {
	f    *os.File
	path string
	recs map[string][]results.Record // system key -> its records
}

// OpenJournal opens or creates a journal and reads the points it holds. If
// the file ends in a partial line (a write torn by a crash), it cuts that
// line and also the complete lines of the last point before it, since they
// may be the first records of the torn point; that point is then missing
// and will be evaluated again.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: another sweep is writing it: %v", path, err)
	}
	j := &Journal{f: f, path: path}
	if err := j.resume(); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// Has reports whether the journal holds the point.
func (j *Journal) Has(p results.System) bool { return j.recs[p.Key()] != nil }

// Records returns the point's records, or nil.
func (j *Journal) Records(p results.System) []results.Record { return j.recs[p.Key()] }

// Close releases the file and its lock.
func (j *Journal) Close() error { return j.f.Close() }

// Cached wraps evaluate so that points the journal holds are answered from
// it and new ones are evaluated and appended. A search restarted on the same
// journal replays its path without evaluating anything twice.
func (j *Journal) Cached(evaluate Evaluate) Evaluate {
	return func(ctx context.Context, p results.System) ([]results.Record, error) {
		if recs := j.Records(p); recs != nil {
			return recs, nil
		}
		recs, err := evaluate(ctx, p)
		if err != nil {
			return nil, err
		}
		if err := j.Append(p, recs); err != nil {
			return nil, err
		}
		return recs, nil
	}
}

// resume reads the records already in the file, cuts a torn tail (see
// OpenJournal) and leaves the file positioned at its end.
func (j *Journal) resume() error {
	data, err := io.ReadAll(j.f)
	if err != nil {
		return fmt.Errorf("%s: %w", j.path, err)
	}
	end := bytes.LastIndexByte(data, '\n') + 1 // end of the last complete line
	torn := end < len(data)
	type line struct {
		rec   results.Record
		start int // byte offset in the file
	}
	var lines []line // the complete, non-blank lines
	for start, no := 0, 1; start < end; no++ {
		n := bytes.IndexByte(data[start:end], '\n')
		text := data[start : start+n]
		if len(bytes.TrimSpace(text)) > 0 {
			var r results.Record
			if err := json.Unmarshal(text, &r); err != nil {
				return fmt.Errorf("%s: line %d: %v (not a sweep file?)", j.path, no, err)
			}
			lines = append(lines, line{r, start})
		}
		start += n + 1
	}
	if torn {
		// The trailing lines of the last point may belong to the torn write:
		// cut them with it.
		key := func(k int) string { return lines[k].rec.System.Key() }
		for k := len(lines) - 1; k >= 0 && key(k) == key(len(lines)-1); k-- {
			end = lines[k].start
		}
		for len(lines) > 0 && lines[len(lines)-1].start >= end {
			lines = lines[:len(lines)-1]
		}
		if err := j.f.Truncate(int64(end)); err != nil {
			return fmt.Errorf("%s: cutting a partial line: %w", j.path, err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("%s: %w", j.path, err)
		}
	}
	if _, err := j.f.Seek(int64(end), io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w", j.path, err)
	}
	j.recs = map[string][]results.Record{}
	for _, l := range lines {
		k := l.rec.System.Key()
		j.recs[k] = append(j.recs[k], l.rec)
	}
	return nil
}

// Append writes all records of p in one write and syncs. Every record must
// be of p, and there must be at least one.
func (j *Journal) Append(p results.System, recs []results.Record) error {
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
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("%s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", j.path, err)
	}
	j.recs[p.Key()] = append([]results.Record(nil), recs...)
	return nil
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
