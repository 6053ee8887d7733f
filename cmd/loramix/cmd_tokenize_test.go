package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// realTokenizer returns LORAMIX_TOKENIZER (set by make test), else
// <repo root>/.cache/tokenizer/tokenizer.json; a missing file fails.
func realTokenizer() string {
	GinkgoHelper()
	p := os.Getenv("LORAMIX_TOKENIZER")
	if p == "" {
		p = filepath.Join("..", "..", ".cache", "tokenizer", "tokenizer.json")
	}
	_, err := os.Stat(p)
	Expect(err).NotTo(HaveOccurred(), "the Llama 2 tokenizer is missing: run `make tokenizer` or set LORAMIX_TOKENIZER")
	return p
}

type golden struct {
	Text     *string `json:"text"`
	IDs      []int   `json:"ids"`
	IDsNoBOS []int   `json:"ids_nobos"`
	Dec      string  `json:"dec"`
}

// goldenLines returns the transformers golden cases whose text is one line.
func goldenLines() []golden {
	GinkgoHelper()
	f, err := os.Open("../../engine/tokenizer/testdata/llama2_golden.jsonl")
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	var out []golden
	for sc.Scan() {
		var g golden
		Expect(json.Unmarshal(sc.Bytes(), &g)).To(Succeed())
		if g.Text != nil && !strings.ContainsAny(*g.Text, "\r\n") {
			out = append(out, g)
		}
	}
	Expect(sc.Err()).NotTo(HaveOccurred())
	Expect(len(out)).To(BeNumerically(">", 500))
	return out
}

func tokenizeLines(args []string, input string) ([]string, error) {
	var out bytes.Buffer
	err := runTokenize(args, strings.NewReader(input), &out)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if out.Len() == 0 {
		lines = nil
	}
	return lines, err
}

var _ = Describe("loramix tokenize", func() {
	var (
		path  string
		cases []golden
		input string
	)
	BeforeEach(func() {
		path = realTokenizer()
		cases = goldenLines()
		var b strings.Builder
		for _, c := range cases {
			b.WriteString(*c.Text + "\n")
		}
		input = b.String()
	})

	It("writes the golden ids of each line, BOS first", func() {
		lines, err := tokenizeLines([]string{"--tokenizer", path}, input)
		Expect(err).NotTo(HaveOccurred())
		Expect(lines).To(HaveLen(len(cases)))
		for i, c := range cases {
			var got struct{ IDs []int }
			Expect(json.Unmarshal([]byte(lines[i]), &got)).To(Succeed())
			Expect(got.IDs).To(Equal(c.IDs), "line %d %q", i+1, *c.Text)
		}
	})

	It("leaves BOS out with --no-bos and finds the tokenizer through LORAMIX_TOKENIZER", func() {
		abs, err := filepath.Abs(path)
		Expect(err).NotTo(HaveOccurred())
		GinkgoT().Setenv("LORAMIX_TOKENIZER", abs)
		lines, err := tokenizeLines([]string{"--no-bos"}, input)
		Expect(err).NotTo(HaveOccurred())
		Expect(lines).To(HaveLen(len(cases)))
		for i, c := range cases {
			want, _ := json.Marshal(map[string]any{"ids": c.IDsNoBOS})
			Expect(lines[i]).To(MatchJSON(want), "line %d %q", i+1, *c.Text)
		}
	})

	It("ends lines at \\n or \\r\\n and keeps a last line without newline", func() {
		lines, err := tokenizeLines([]string{"--tokenizer", path}, "### Human: Hello!### Assistant:\r\n\nTu es le seul client du magasin. ###>")
		Expect(err).NotTo(HaveOccurred())
		want := map[string][]int{}
		for _, c := range cases {
			want[*c.Text] = c.IDs
		}
		Expect(lines).To(HaveLen(3))
		for i, text := range []string{"### Human: Hello!### Assistant:", "", "Tu es le seul client du magasin. ###>"} {
			Expect(want).To(HaveKey(text))
			j, _ := json.Marshal(map[string]any{"ids": want[text]})
			Expect(lines[i]).To(MatchJSON(j))
		}
	})

	It("decodes {\"ids\": [...]} lines and bare arrays to the golden text", func() {
		var b strings.Builder
		for i, c := range cases {
			j, _ := json.Marshal(c.IDs)
			if i%2 == 0 {
				fmt.Fprintf(&b, "{\"ids\": %s}\n", j)
			} else {
				fmt.Fprintf(&b, "%s\n", j)
			}
		}
		lines, err := tokenizeLines([]string{"--tokenizer", path, "--decode"}, b.String())
		Expect(err).NotTo(HaveOccurred())
		Expect(lines).To(HaveLen(len(cases)))
		for i, c := range cases {
			var got struct{ Text string }
			Expect(json.Unmarshal([]byte(lines[i]), &got)).To(Succeed())
			Expect(got.Text).To(Equal(c.Dec), "line %d", i+1)
		}
		Expect(lines[0]).NotTo(ContainSubstring(`\u003c`), "HTML is not escaped")
	})

	DescribeTable("reports bad input with the line number",
		func(args []string, input, want string) {
			_, err := tokenizeLines(append([]string{"--tokenizer", path}, args...), input)
			Expect(err).To(MatchError(ContainSubstring(want)))
		},
		Entry("not JSON", []string{"--decode"}, "[1, 2]\nhello\n", "stdin line 2"),
		Entry("no ids field", []string{"--decode"}, `{"text": "x"}`, `stdin line 1: want {"ids": [...]}: no "ids" field`),
		Entry("ids not numbers", []string{"--decode"}, `{"ids": ["a"]}`, "stdin line 1"),
		Entry("arguments", []string{"file.txt"}, "", "unexpected arguments"),
		Entry("unknown flag", []string{"--bos"}, "", "flag provided but not defined"),
	)

	It("names a missing tokenizer file", func() {
		missing := filepath.Join(GinkgoT().TempDir(), "tokenizer.json")
		_, err := tokenizeLines([]string{"--tokenizer", missing}, "hi\n")
		Expect(err).To(MatchError(ContainSubstring(missing)))
	})
})
