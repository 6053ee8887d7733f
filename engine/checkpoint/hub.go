package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// hubID matches "org/name" with an optional "@revision".
var hubID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$`)

// HubCaches lists the Hugging Face cache folders to search, in order:
// $HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub and
// ~/.cache/huggingface/hub (those that are set).
func HubCaches() []string {
	var dirs []string
	add := func(d string) {
		for _, e := range dirs {
			if e == d {
				return
			}
		}
		dirs = append(dirs, d)
	}
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		add(d)
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		add(filepath.Join(d, "hub"))
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		add(filepath.Join(d, "huggingface", "hub"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		add(filepath.Join(home, ".cache", "huggingface", "hub"))
	}
	return dirs
}

// Resolve turns a path or a hub id into a folder. An existing folder is
// returned as is. Otherwise "org/name" (or "org/name@revision") is looked up
// offline in the Hugging Face caches (HubCaches): the snapshot that
// refs/main (or refs/<revision>) names, or snapshots/<revision> for a commit
// hash. Nothing is downloaded; a model missing from the caches is an error
// that says where it looked.
func Resolve(pathOrID string) (string, error) {
	if st, err := os.Stat(pathOrID); err == nil {
		if !st.IsDir() {
			return "", fmt.Errorf("%s is a file; give the checkpoint's folder", pathOrID)
		}
		return pathOrID, nil
	}
	if !hubID.MatchString(pathOrID) || strings.HasPrefix(pathOrID, ".") {
		return "", fmt.Errorf("%s: no such folder", pathOrID)
	}
	id, rev, _ := strings.Cut(pathOrID, "@")
	if rev == "" {
		rev = "main"
	}
	if strings.Contains(rev, "..") {
		return "", fmt.Errorf("%s: bad revision %q", pathOrID, rev)
	}
	repo := "models--" + strings.ReplaceAll(id, "/", "--")
	caches := HubCaches()
	for _, c := range caches {
		dir := filepath.Join(c, repo)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		snap := rev
		if ref, err := os.ReadFile(filepath.Join(dir, "refs", rev)); err == nil {
			snap = strings.TrimSpace(string(ref))
		}
		if snap == "" || strings.ContainsAny(snap, `/\`) || strings.Contains(snap, "..") {
			return "", fmt.Errorf("%s: refs/%s in %s names no snapshot", pathOrID, rev, dir)
		}
		sdir := filepath.Join(dir, "snapshots", snap)
		if st, err := os.Stat(sdir); err == nil && st.IsDir() {
			return sdir, nil
		}
		return "", fmt.Errorf("%s: the cache %s has no snapshot %s for revision %s (download it with huggingface-cli first)", pathOrID, dir, snap, rev)
	}
	return "", fmt.Errorf("%s is neither a folder nor a model in the Hugging Face cache (looked in %s for %s); loramix never downloads, fetch it first", pathOrID, strings.Join(caches, ", "), repo)
}
