package checkpoint_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/engine/checkpoint"
)

// fakeCache lays out a Hugging Face hub cache holding llama-gqa as
// loramix/tiny-llama-gqa, with refs/main naming snapshot rev.
func fakeCache(root, rev string) string {
	repo := filepath.Join(root, "models--loramix--tiny-llama-gqa")
	copyDir(filepath.Join(tiny, "llama-gqa"), filepath.Join(repo, "snapshots", rev))
	Expect(os.MkdirAll(filepath.Join(repo, "refs"), 0o755)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(rev+"\n"), 0o644)).To(Succeed())
	return filepath.Join(repo, "snapshots", rev)
}

var _ = Describe("Resolve", func() {
	BeforeEach(func() {
		for _, v := range []string{"HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"} {
			GinkgoT().Setenv(v, "")
		}
		GinkgoT().Setenv("HOME", GinkgoT().TempDir())
	})

	It("returns a folder as it is", func() {
		dir, err := checkpoint.Resolve(filepath.Join(tiny, "llama-mha"))
		Expect(err).NotTo(HaveOccurred())
		Expect(dir).To(Equal(filepath.Join(tiny, "llama-mha")))
	})

	It("finds a hub id at refs/main in HF_HUB_CACHE and opens it", func() {
		cache := GinkgoT().TempDir()
		snap := fakeCache(cache, "0123abcd")
		GinkgoT().Setenv("HF_HUB_CACHE", cache)
		dir, err := checkpoint.Resolve("loramix/tiny-llama-gqa")
		Expect(err).NotTo(HaveOccurred())
		Expect(dir).To(Equal(snap))
		m, err := checkpoint.Open("loramix/tiny-llama-gqa")
		Expect(err).NotTo(HaveOccurred())
		Expect(m.Config.NumKeyValueHeads).To(Equal(2))
		Expect(m.Close()).To(Succeed())
	})

	It("finds it under HF_HOME/hub and ~/.cache/huggingface/hub, and at a pinned revision", func() {
		home := GinkgoT().TempDir()
		snap := fakeCache(filepath.Join(home, "hub"), "feedbeef")
		GinkgoT().Setenv("HF_HOME", home)
		Expect(checkpoint.Resolve("loramix/tiny-llama-gqa")).To(Equal(snap))
		Expect(checkpoint.Resolve("loramix/tiny-llama-gqa@feedbeef")).To(Equal(snap))

		GinkgoT().Setenv("HF_HOME", "")
		user := GinkgoT().TempDir()
		GinkgoT().Setenv("HOME", user)
		snap = fakeCache(filepath.Join(user, ".cache", "huggingface", "hub"), "cafe")
		Expect(checkpoint.Resolve("loramix/tiny-llama-gqa")).To(Equal(snap))
	})

	It("says where it looked when a model is not cached", func() {
		cache := GinkgoT().TempDir()
		GinkgoT().Setenv("HF_HUB_CACHE", cache)
		_, err := checkpoint.Resolve("meta-llama/Llama-2-7b-hf")
		Expect(err).To(MatchError(And(ContainSubstring(cache), ContainSubstring("models--meta-llama--Llama-2-7b-hf"), ContainSubstring("never downloads"))))
	})

	It("says so when refs/main names a snapshot that is not there", func() {
		cache := GinkgoT().TempDir()
		fakeCache(cache, "aaaa")
		Expect(os.WriteFile(filepath.Join(cache, "models--loramix--tiny-llama-gqa", "refs", "main"), []byte("bbbb"), 0o644)).To(Succeed())
		GinkgoT().Setenv("HF_HUB_CACHE", cache)
		_, err := checkpoint.Resolve("loramix/tiny-llama-gqa")
		Expect(err).To(MatchError(ContainSubstring("no snapshot bbbb")))
	})

	It("refuses a path that is neither a folder nor a hub id", func() {
		_, err := checkpoint.Resolve("./no/such/thing")
		Expect(err).To(MatchError(ContainSubstring("no such folder")))
		_, err = checkpoint.Resolve(filepath.Join(tiny, "llama-mha", "config.json"))
		Expect(err).To(MatchError(ContainSubstring("is a file")))
	})
})
