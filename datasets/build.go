package datasets

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Config says where to build the corpora and from what.
type Config struct {
	OutDir   string   // outputs: fren/, fren-descriptions/, oasst/, clash/, pretrain/, manifest.json
	AptDir   string   // private apt state; defaults to OutDir/apt
	Packages []string // packages whose French catalogs give translation pairs
	Mirror   string
	Suite    string
	Keyring  string
	Refresh  bool // run apt-get update even when lists are present
	Log      io.Writer
}

// Defaults for Config.
const (
	DefaultMirror  = "http://deb.debian.org/debian"
	DefaultSuite   = "bookworm"
	DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
)

// The splits: French→English pairs by their source sentence, dialogues by
// their package name.
var (
	frenSplitter = Splitter{Salt: "loramix/fren/", DevPer10k: 200, TestPer10k: 200}
	descSplitter = Splitter{Salt: "loramix/fren-descriptions/", DevPer10k: 200, TestPer10k: 200}
	chatSplitter = Splitter{Salt: "loramix/chat/", DevPer10k: 100, TestPer10k: 100}
)

// Input is one file the corpora were built from.
type Input struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// PackageInput is a .deb whose French catalogs were read.
type PackageInput struct {
	Input
	Catalogs []string `json:"catalogs"`
	Messages int      `json:"messages"` // catalog entries read
	Pairs    int      `json:"pairs"`    // pairs kept before deduplication across packages
}

// Output is one file written by Build.
type Output struct {
	Path   string `json:"path"` // relative to OutDir
	Lines  int    `json:"lines"`
	SHA256 string `json:"sha256"`
}

// Manifest records the inputs, the counts per corpus and split, and the outputs.
type Manifest struct {
	Mirror   string                   `json:"mirror"`
	Suite    string                   `json:"suite"`
	Lists    []Input                  `json:"lists"`
	Packages []PackageInput           `json:"packages"`
	Counts   map[string]map[Split]int `json:"counts"`
	Outputs  []Output                 `json:"outputs"`
}

// Build fetches the inputs with apt into private folders and writes every
// corpus and the manifest under cfg.OutDir.
func Build(cfg Config) (*Manifest, error) {
	if cfg.Mirror == "" {
		cfg.Mirror = DefaultMirror
	}
	if cfg.Suite == "" {
		cfg.Suite = DefaultSuite
	}
	if cfg.Keyring == "" {
		cfg.Keyring = DefaultKeyring
	}
	if cfg.AptDir == "" {
		cfg.AptDir = filepath.Join(cfg.OutDir, "apt")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	absApt, err := filepath.Abs(cfg.AptDir)
	if err != nil {
		return nil, err
	}
	apt := Apt{Dir: absApt, Mirror: cfg.Mirror, Suite: cfg.Suite, Keyring: cfg.Keyring, Log: cfg.Log}
	if err := apt.Update(cfg.Refresh); err != nil {
		return nil, err
	}
	man := &Manifest{Mirror: cfg.Mirror, Suite: cfg.Suite, Counts: map[string]map[Split]int{}}
	relVersion, relDate, err := apt.Release()
	if err != nil {
		return nil, err
	}
	descs := map[string][]Description{}
	for _, lang := range []string{"en", "fr"} {
		path, err := apt.TranslationList(lang)
		if err != nil {
			return nil, err
		}
		sum, err := FileSHA256(path)
		if err != nil {
			return nil, err
		}
		man.Lists = append(man.Lists, Input{Name: filepath.Base(path), Version: relVersion + " (" + relDate + ")", SHA256: sum})
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		descs[lang], err = ParseTranslation(filepath.Base(path), lang, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "datasets: %s: %d descriptions\n", filepath.Base(path), len(descs[lang]))
	}

	// French catalogs.
	debs, err := apt.Download(cfg.Packages)
	if err != nil {
		return nil, err
	}
	var catPairs []Pair
	var catEN, catFR []string // every single-line message, for pretraining
	for _, deb := range debs {
		pi, pairs, en, fr, err := readDeb(deb)
		if err != nil {
			return nil, err
		}
		man.Packages = append(man.Packages, pi)
		catPairs = append(catPairs, pairs...)
		catEN, catFR = append(catEN, en...), append(catFR, fr...)
		fmt.Fprintf(cfg.Log, "datasets: %s %s: %d catalogs, %d messages, %d pairs\n", pi.Name, pi.Version, len(pi.Catalogs), pi.Messages, pi.Pairs)
	}
	fren := splitPairs(Dedupe(catPairs), frenSplitter)

	// Description summaries.
	var descPairs []Pair
	for _, p := range PairDescriptions(descs["en"], descs["fr"]) {
		if c, ok := CleanPair(p.Target, p.Source, PairLimits{MinWords: 2, MaxWords: 30}); ok {
			descPairs = append(descPairs, c)
		}
	}
	frenDesc := splitPairs(Dedupe(descPairs), descSplitter)

	// Dialogues from English descriptions, one per distinct long description.
	chat := map[Split][]Dialogue{}
	heldMD5 := map[string]bool{} // descriptions kept out of pretraining
	seenAnswer := map[string]bool{}
	for _, d := range descs["en"] {
		dlg, ok := MakeDialogue(d, DefaultChatOptions)
		if !ok {
			continue
		}
		k := NormKey(d.Paragraphs[0])
		if seenAnswer[k] {
			continue
		}
		seenAnswer[k] = true
		s := chatSplitter.Of(d.Package)
		chat[s] = append(chat[s], dlg)
		if s != Train {
			heldMD5[d.MD5] = true
		}
	}
	heldText := map[string]bool{} // normalized sentences kept out of pretraining
	for _, s := range []Split{Dev, Test} {
		for _, p := range append(fren[s], frenDesc[s]...) {
			heldText[NormKey(p.Source)] = true
			heldText[NormKey(p.Target)] = true
		}
	}
	for _, d := range append(descs["en"], descs["fr"]...) {
		if heldText[NormKey(d.Summary)] {
			heldMD5[d.MD5] = true
		}
	}

	out := writer{dir: cfg.OutDir, man: man}
	for _, s := range Splits {
		out.jsonl("fren", s, len(fren[s]), func(i int) any { return fren[s][i] })
		out.jsonl("fren-descriptions", s, len(frenDesc[s]), func(i int) any { return frenDesc[s][i] })
		out.jsonl("oasst", s, len(chat[s]), func(i int) any { return chat[s][i].Guanaco() })
		out.jsonl("clash", s, len(chat[s]), func(i int) any { return chat[s][i].Clash() })
	}
	for _, lang := range []string{"en", "fr"} {
		var lines []string
		for _, d := range descs[lang] {
			if !heldMD5[d.MD5] {
				lines = append(lines, strings.Join(append([]string{sentence(d.Summary)}, d.Paragraphs...), " "))
			}
		}
		out.lines(filepath.Join("pretrain", lang+".txt"), dedupeLines(lines, nil))
	}
	out.lines(filepath.Join("pretrain", "catalog-en.txt"), dedupeLines(catEN, heldText))
	out.lines(filepath.Join("pretrain", "catalog-fr.txt"), dedupeLines(catFR, heldText))
	if out.err != nil {
		return nil, out.err
	}
	sort.Slice(man.Outputs, func(i, j int) bool { return man.Outputs[i].Path < man.Outputs[j].Path })
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(filepath.Join(cfg.OutDir, "manifest.json"), func(w *bufio.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	}); err != nil {
		return nil, err
	}
	return man, nil
}

// readDeb reads the French catalogs of one package: its manifest entry, the
// cleaned pairs, and every single-line message (English, French) with
// mnemonics removed, for pretraining.
func readDeb(deb string) (pi PackageInput, pairs []Pair, en, fr []string, err error) {
	if pi.Name, err = DebField(deb, "Package"); err != nil {
		return
	}
	if pi.Version, err = DebField(deb, "Version"); err != nil {
		return
	}
	if pi.SHA256, err = FileSHA256(deb); err != nil {
		return
	}
	cats, err := ExtractCatalogs(deb)
	if err != nil {
		return
	}
	if len(cats) == 0 {
		err = fmt.Errorf("%s: no usr/share/locale/fr/LC_MESSAGES/*.mo in the package (drop it from the list)", deb)
		return
	}
	for name := range cats {
		pi.Catalogs = append(pi.Catalogs, name)
	}
	sort.Strings(pi.Catalogs)
	for _, name := range pi.Catalogs {
		msgs, perr := ParseMO(pi.Name+":"+name, cats[name])
		if perr != nil {
			err = perr
			return
		}
		pi.Messages += len(msgs)
		for _, m := range msgs {
			if p, ok := CleanPair(m.ID, m.Str, DefaultPairLimits); ok {
				pairs = append(pairs, p)
			}
			if m.Str != "" && !strings.ContainsAny(m.ID+m.Str, "\n\r") && !IsFormatOnly(m.ID) {
				en = append(en, collapseSpace(stripMnemonic(m.ID)))
				fr = append(fr, collapseSpace(stripMnemonic(m.Str)))
			}
		}
	}
	pi.Pairs = len(pairs)
	return
}

func splitPairs(pairs []Pair, s Splitter) map[Split][]Pair {
	out := map[Split][]Pair{}
	for _, p := range pairs {
		k := s.Of(NormKey(p.Source))
		out[k] = append(out[k], p)
	}
	return out
}

// dedupeLines keeps the first of equal lines (by NormKey), dropping empty
// lines and lines whose key is in skip.
func dedupeLines(lines []string, skip map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lines {
		k := NormKey(l)
		if k == "" || seen[k] || skip[k] {
			continue
		}
		seen[k] = true
		out = append(out, l)
	}
	return out
}

// writer writes outputs under dir and records them in the manifest; the
// first error sticks.
type writer struct {
	dir string
	man *Manifest
	err error
}

func (w *writer) jsonl(corpus string, s Split, n int, item func(int) any) {
	rel := filepath.Join(corpus, string(s)+".jsonl")
	w.write(rel, n, func(bw *bufio.Writer) error {
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		for i := 0; i < n; i++ {
			if err := enc.Encode(item(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if w.man.Counts[corpus] == nil {
		w.man.Counts[corpus] = map[Split]int{}
	}
	w.man.Counts[corpus][s] = n
}

func (w *writer) lines(rel string, lines []string) {
	w.write(rel, len(lines), func(bw *bufio.Writer) error {
		for _, l := range lines {
			if _, err := bw.WriteString(l + "\n"); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w *writer) write(rel string, n int, fill func(*bufio.Writer) error) {
	if w.err != nil {
		return
	}
	path := filepath.Join(w.dir, rel)
	if w.err = writeAtomic(path, fill); w.err != nil {
		return
	}
	sum, err := FileSHA256(path)
	if err != nil {
		w.err = err
		return
	}
	w.man.Outputs = append(w.man.Outputs, Output{Path: rel, Lines: n, SHA256: sum})
}

// writeAtomic writes a file through a temporary file in the same folder and
// renames it into place, creating the folder if needed.
func writeAtomic(path string, fill func(*bufio.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(bw); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
