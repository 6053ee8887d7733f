package eval

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"loramix/suites/results"
	"loramix/suites/tasks"
)

// Plan is a whole evaluation: tasks, systems, and where the data lives.
type Plan struct {
	Tasks    []*tasks.Task
	Systems  []results.System
	DataRoot string // folder the tasks' dataset dirs are relative to
	Limit    int    // examples per task; 0 means all
	Progress bool   // draw a progress bar on stderr
}

// Run evaluates every system on every task and returns a complete results
// file, with the configuration, versions and git revision filled in.
func (s *Session) Run(p Plan, config map[string]any) (*results.File, error) {
	f := &results.File{Schema: results.SchemaVersion, Created: time.Now().UTC(), GitRevision: GitRevision(),
		Versions: Versions(), Config: config}
	for _, t := range p.Tasks {
		exs, err := t.Examples(p.DataRoot, p.Limit)
		if err != nil {
			return nil, err
		}
		var progress func(done, total int)
		if p.Progress {
			var bar *progressbar.ProgressBar
			progress = func(done, total int) {
				if bar == nil {
					bar = progressbar.NewOptions(total, progressbar.OptionSetDescription("eval "+t.Name),
						progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
						progressbar.OptionClearOnFinish())
				}
				bar.Set(done)
			}
		}
		recs, err := s.Evaluate(t, exs, p.Systems, progress)
		if err != nil {
			return nil, err
		}
		f.Records = append(f.Records, recs...)
	}
	return f, nil
}

// GitRevision returns the revision loramix was built from, or the working
// tree's HEAD, or "unknown".
func GitRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return "unknown"
}

// Versions lists the versions that produced a result: Go and loramix's
// main dependencies.
func Versions() map[string]string {
	v := map[string]string{"go": runtime.Version(), "goos/goarch": runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if strings.HasPrefix(d.Path, "gonum.org") || strings.HasPrefix(d.Path, "github.com/onsi") {
				v[d.Path] = d.Version
			}
		}
	}
	v["cpus"] = fmt.Sprint(runtime.NumCPU())
	return v
}
