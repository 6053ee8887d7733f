package datasets

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Apt runs apt-get against private state and cache folders under Dir, so that
// the system's own apt state is read (dpkg status) but never changed. The
// system's apt.conf.d snippets and sources are ignored: the sources are one
// line written by Apt, and index files are stored uncompressed.
type Apt struct {
	Dir     string // private root: sources.list, lists/, cache/, debs/
	Mirror  string // e.g. http://deb.debian.org/debian
	Suite   string // e.g. bookworm
	Keyring string // the archive keyring that signs Suite
	Log     io.Writer
}

func (a Apt) listsDir() string { return filepath.Join(a.Dir, "lists") }

// DebsDir is where downloaded packages are kept.
func (a Apt) DebsDir() string { return filepath.Join(a.Dir, "debs") }

func (a Apt) options() []string {
	return []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.Dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(a.Dir, "sources.list.d"),
		"-o", "Dir::Etc::Parts=" + filepath.Join(a.Dir, "apt.conf.d"),
		"-o", "Dir::State::Lists=" + a.listsDir(),
		"-o", "Dir::Cache=" + filepath.Join(a.Dir, "cache"),
		"-o", "Dir::State::status=/var/lib/dpkg/status",
		"-o", "Acquire::Languages=en,fr",
		"-o", "Acquire::GzipIndexes=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false",
		"-o", "APT::Sandbox::User=root",
	}
}

func (a Apt) run(dir string, args ...string) error {
	cmd := exec.Command("apt-get", append(a.options(), args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stdout = a.Log
	cmd.Stderr = io.MultiWriter(&stderr, a.Log)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, truncate(stderr.String(), 2000))
	}
	return nil
}

// Update writes the sources list and fetches the package and translation
// indexes (English and French) into the private lists folder. It is skipped
// when the translation lists are already there, unless force is set.
func (a Apt) Update(force bool) error {
	if _, err := a.TranslationList("fr"); err == nil && !force {
		return nil
	}
	for _, d := range []string{"lists/partial", "cache/archives/partial", "sources.list.d", "apt.conf.d", "debs"} {
		if err := os.MkdirAll(filepath.Join(a.Dir, d), 0o755); err != nil {
			return err
		}
	}
	src := fmt.Sprintf("deb [signed-by=%s] %s %s main\n", a.Keyring, a.Mirror, a.Suite)
	if err := os.WriteFile(filepath.Join(a.Dir, "sources.list"), []byte(src), 0o644); err != nil {
		return err
	}
	return a.run(a.Dir, "update")
}

// TranslationList returns the path of the stored Translation-<lang> index.
func (a Apt) TranslationList(lang string) (string, error) {
	pat := filepath.Join(a.listsDir(), "*_"+a.Suite+"_main_i18n_Translation-"+lang)
	m, _ := filepath.Glob(pat)
	if len(m) != 1 {
		return "", fmt.Errorf("apt lists: want one file matching %s, found %d (did apt-get update fetch Translation-%s?)", pat, len(m), lang)
	}
	return m[0], nil
}

// Release returns the suite's Version and Date fields from its stored InRelease file.
func (a Apt) Release() (version, date string, err error) {
	m, _ := filepath.Glob(filepath.Join(a.listsDir(), "*_dists_"+a.Suite+"_InRelease"))
	if len(m) != 1 {
		return "", "", fmt.Errorf("apt lists: no InRelease for %s in %s", a.Suite, a.listsDir())
	}
	f, err := os.Open(m[0])
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		switch k {
		case "Version":
			version = v
		case "Date":
			date = v
		}
		if version != "" && date != "" {
			break
		}
	}
	return version, date, sc.Err()
}

// Download fetches the candidate .deb of each named package into DebsDir,
// skipping packages that already have a .deb there, and returns the paths of
// the packages' .deb files sorted by package name.
func (a Apt) Download(pkgs []string) ([]string, error) {
	if err := os.MkdirAll(a.DebsDir(), 0o755); err != nil {
		return nil, err
	}
	have := map[string]string{}
	debs, _ := filepath.Glob(filepath.Join(a.DebsDir(), "*.deb"))
	for _, d := range debs {
		name, _, _ := strings.Cut(filepath.Base(d), "_")
		have[name] = d
	}
	var missing []string
	for _, p := range pkgs {
		if _, ok := have[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if err := a.run(a.DebsDir(), append([]string{"download"}, missing...)...); err != nil {
			return nil, err
		}
		debs, _ = filepath.Glob(filepath.Join(a.DebsDir(), "*.deb"))
		for _, d := range debs {
			name, _, _ := strings.Cut(filepath.Base(d), "_")
			have[name] = d
		}
	}
	out := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		d, ok := have[p]
		if !ok {
			return nil, fmt.Errorf("apt-get download %s left no %s_*.deb in %s", p, p, a.DebsDir())
		}
		out = append(out, d)
	}
	sort.Strings(out)
	return out, nil
}

// DebField reads one control field of a .deb with dpkg-deb.
func DebField(deb, field string) (string, error) {
	out, err := exec.Command("dpkg-deb", "-f", deb, field).Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-deb -f %s %s: %w", deb, field, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// ExtractCatalogs unpacks deb into a temporary folder with dpkg-deb -x and
// returns the French catalogs it holds (usr/share/locale/fr/LC_MESSAGES/*.mo),
// keyed by file name. The folder is removed before returning.
func ExtractCatalogs(deb string) (map[string][]byte, error) {
	tmp, err := os.MkdirTemp("", "loramix-deb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %w: %s", deb, err, truncate(string(out), 500))
	}
	files, _ := filepath.Glob(filepath.Join(tmp, "usr/share/locale/fr/LC_MESSAGES/*.mo"))
	cats := make(map[string][]byte, len(files))
	for _, f := range files {
		if fi, err := os.Lstat(f); err != nil || !fi.Mode().IsRegular() {
			continue // a symbolic link to a catalog of another package
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cats[filepath.Base(f)] = b
	}
	return cats, nil
}

// FileSHA256 returns the hex sha256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
