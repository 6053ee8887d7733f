package tokenizer_test

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestTokenizer(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Tokenizer Suite")
}

// tokenizerPath returns the real tokenizer.json: LORAMIX_TOKENIZER (set by
// make test), else <repo root>/.cache/tokenizer/tokenizer.json. A missing
// file fails the spec: the golden specs never skip.
func tokenizerPath() string {
	GinkgoHelper()
	p := os.Getenv("LORAMIX_TOKENIZER")
	if p == "" {
		dir, err := os.Getwd()
		Expect(err).NotTo(HaveOccurred())
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			Expect(parent).NotTo(Equal(dir), "no go.mod above the test directory")
			dir = parent
		}
		p = filepath.Join(dir, ".cache", "tokenizer", "tokenizer.json")
	}
	_, err := os.Stat(p)
	Expect(err).NotTo(HaveOccurred(), "the Llama 2 tokenizer is missing: run `make tokenizer` or set LORAMIX_TOKENIZER")
	return p
}
