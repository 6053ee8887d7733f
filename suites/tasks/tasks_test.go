package tasks_test

import (
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/suites/tasks"
)

var _ = Describe("Built-in tasks", func() {
	var byName map[string]*tasks.Task
	BeforeEach(func() {
		ts, err := tasks.Builtin()
		Expect(err).NotTo(HaveOccurred())
		byName = map[string]*tasks.Task{}
		for _, t := range ts {
			byName[t.Name] = t
		}
		Expect(byName).To(HaveLen(3))
	})

	It("declares fren: translation prompt, newline and </s> stops, 130 tokens, BLEU and chrF", func() {
		t := byName["fren"]
		Expect(t.File).To(Equal("builtin:fren.yaml"))
		Expect(t.Version).To(Equal(tasks.Version("1")))
		Expect(t.DataPath("/repo")).To(Equal("/repo/datasets/build/fren/test.jsonl"))
		Expect(t.RenderPrompt(map[string]string{"source": "Bonjour."})).To(Equal("Bonjour. ###>"))
		Expect(t.Stop).To(Equal([]string{"\n", "</s>"}))
		Expect(t.MaxNewTokens).To(Equal(130))
		Expect(t.Reference).To(Equal("target"))
		bleu, ok := t.Metric("bleu")
		Expect(ok).To(BeTrue())
		Expect(bleu.Higher()).To(BeTrue())
		_, ok = t.Metric("chrf")
		Expect(ok).To(BeTrue())
	})

	It("declares oasst and clash with their chat formats and length/repetition metrics", func() {
		o := byName["oasst"]
		Expect(o.RenderPrompt(map[string]string{"prompt": "### Human: What is bash?### Assistant:"})).To(Equal("### Human: What is bash?### Assistant:"))
		Expect(o.Reference).To(Equal("answer"))
		rep, ok := o.Metric("repetition")
		Expect(ok).To(BeTrue())
		Expect(rep.Higher()).To(BeFalse())
		Expect(rep.Param("order")).To(Equal(3.0))
		_, ok = o.Metric("length_words")
		Expect(ok).To(BeTrue())
		loop, _ := o.Metric("loop_rate")
		Expect(loop.Param("min_repeats")).To(Equal(2.0)) // the default

		c := byName["clash"]
		Expect(c.RenderPrompt(map[string]string{"question": "What is bash?"})).To(Equal("What is bash? ###> Assistant:"))
	})

	It("carries format rules that separate translations from chat answers", func() {
		fren, chat := byName["fren"].Checker(), byName["oasst"].Checker()
		f := map[string]string{"source": "Tu es le seul client du magasin.", "question": "What is the bash package?"}
		Expect(fren.Check("You are the only customer in the store.", f)).To(BeEmpty())
		Expect(fren.Check("### Human: hi", f)).NotTo(BeEmpty())
		Expect(fren.Check("Tu es le seul client du magasin.", f)).NotTo(BeEmpty())
		Expect(chat.Check("Bash is the GNU Project's shell.", f)).To(BeEmpty())
		Expect(chat.Check("###> You are the only customer in the store.", f)).NotTo(BeEmpty())
		Expect(chat.Check("Tu es le seul client du magasin, et tu es le seul.", f)).NotTo(BeEmpty())
	})
})

var _ = Describe("Task files", func() {
	It("loads a directory of user tasks in YAML and JSON, numbers as versions, renamed fields", func() {
		ts, err := tasks.LoadDir("testdata/good")
		Expect(err).NotTo(HaveOccurred())
		Expect(ts).To(HaveLen(2))
		Expect(ts[0].Name).To(Equal("echo"))
		Expect(ts[0].File).To(Equal(filepath.Join("testdata/good", "echo.yml")))
		s := ts[1]
		Expect(s.Version).To(Equal(tasks.Version("2")))

		ex, err := s.Examples("testdata", 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(ex).To(HaveLen(2)) // the blank line is skipped
		Expect(ex[0].Prompt).To(Equal("Summarize: Tu es le seul client du magasin.\n"))
		Expect(ex[0].Reference).To(Equal("You are the only customer in the store."))
		Expect(ex[1].Line).To(Equal(3))
		Expect(ex[1].Reference).To(Equal(`File "a.txt" not found.`))
		Expect(ex[1].Fields).To(HaveKeyWithValue("id", "7"))
		Expect(ex[1].Fields).To(HaveKeyWithValue("french", "Le fichier « a.txt » est introuvable."))

		one, err := s.Examples("testdata", 1)
		Expect(err).NotTo(HaveOccurred())
		Expect(one).To(HaveLen(1))
	})

	It("finds a user task before the built-in ones, and built-in ones by name", func() {
		t, err := tasks.Find("echo", "testdata/good")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Metrics[0].Param("min_chars")).To(Equal(4.0))
		t, err = tasks.Find("fren", "testdata/good")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.File).To(Equal("builtin:fren.yaml"))
		_, err = tasks.Find("nope", "testdata/good")
		Expect(err).To(MatchError(`no task "nope" (have clash, echo, fren, oasst, summarize)`))
	})

	It("names the file, line and field when data lacks what the task needs", func() {
		t, err := tasks.Parse([]byte(strings.Replace(minimal, "split: test", "file: noref.jsonl", 1)), "x.yaml")
		Expect(err).NotTo(HaveOccurred())
		_, err = t.Examples("testdata", 0)
		Expect(err).To(MatchError(ContainSubstring(`noref.jsonl:1: no field "target" (reference_field of x.yaml)`)))

		t, err = tasks.Parse([]byte(strings.Replace(minimal, "{{.source}}", "{{.sauce}}", 1)), "y.yaml")
		Expect(err).NotTo(HaveOccurred())
		_, err = t.Examples("testdata", 0)
		Expect(err).To(MatchError(And(ContainSubstring("test.jsonl:1"), ContainSubstring(`"sauce"`))))

		t, err = tasks.Parse([]byte(minimal+"  fields: {x: nothere}\n"), "z.yaml")
		Expect(err).NotTo(HaveOccurred())
		_, err = t.Examples("testdata", 0)
		Expect(err).To(MatchError(ContainSubstring(`no field "nothere" (dataset.fields.x of z.yaml)`)))

		_, err = t.Examples("nowhere", 0)
		Expect(err).To(MatchError(ContainSubstring("z.yaml")))
	})

	DescribeTable("rejects a bad task file, naming the file and the field",
		func(edit func(string) string, want string) {
			_, err := tasks.Parse([]byte(edit(minimal)), "bad.yaml")
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(HavePrefix("bad.yaml: "))
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("unknown metric", rep("name: bleu", "name: blue"), `metrics[0].name: unknown metric "blue" (known: bleu, chrf, chrf++, format_adherence, length_tokens, length_words, loop_rate, repetition)`),
		Entry("missing direction", rep("    higher_is_better: true\n", ""), "metrics[0].higher_is_better: missing for bleu"),
		Entry("wrong direction", rep("higher_is_better: true", "higher_is_better: false"), "metrics[0].higher_is_better: bleu is higher-is-better"),
		Entry("unknown parameter", rep("higher_is_better: true", "higher_is_better: true\n    params: {order: 2}"), `metrics[0].params.order: bleu takes no parameter "order"`),
		Entry("a metric twice", rep("metrics:\n", "metrics:\n  - {name: bleu, higher_is_better: true}\n"), `metrics[1].name: "bleu" listed twice`),
		Entry("no metrics", rep("metrics:\n  - name: bleu\n    higher_is_better: true\n", ""), "metrics: none given"),
		Entry("unknown key", rep("max_new_tokens:", "max_new_token:"), `unknown field "max_new_token"`),
		Entry("no name", rep("name: t1\n", ""), "name: missing"),
		Entry("bad name", rep("name: t1", "name: T 1"), `name: "T 1" must match`),
		Entry("no version", rep("version: \"1\"\n", ""), "version: missing"),
		Entry("no dataset dir", rep("dir: data/fren", "dir: \"\""), "dataset.dir: missing"),
		Entry("split as a path", rep("split: test", "split: a/test"), "dataset.split"),
		Entry("no prompt", rep("prompt: \"{{.source}} ###>\"\n", ""), "prompt: missing"),
		Entry("broken template", rep("{{.source}}", "{{.source"), "prompt: template"),
		Entry("no reference", rep("reference_field: target\n", ""), "reference_field: missing"),
		Entry("no max_new_tokens", rep("max_new_tokens: 130", "max_new_tokens: 0"), "max_new_tokens: want > 0, got 0"),
		Entry("empty stop", rep(`stop: ["\n"]`, `stop: ["\n", ""]`), "stop[1]: empty string"),
		Entry("bad pattern", rep("format:\n", "format:\n  forbid_patterns: [\"(\"]\n"), "format.forbid_patterns[0]: error parsing regexp"),
		Entry("bad language", rep("format:\n", "format:\n  language: de\n"), "format.language"),
		Entry("not YAML", func(string) string { return "name: [" }, "bad.yaml: "),
	)

	It("reports a missing file and duplicate task names", func() {
		_, err := tasks.Load("testdata/none.yaml")
		Expect(err).To(MatchError(ContainSubstring("testdata/none.yaml")))
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(minimal), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(minimal), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)).To(Succeed())
		_, err = tasks.LoadDir(dir)
		Expect(err).To(MatchError(ContainSubstring(`b.yaml: name: task "t1" is also defined in`)))
	})

	It("lets every known metric be used by a file", func() {
		for name, info := range tasks.KnownMetrics {
			dir := "true"
			if info.HigherIsBetter != nil && !*info.HigherIsBetter {
				dir = "false"
			}
			_, err := tasks.Parse([]byte(rep("name: bleu\n    higher_is_better: true", "name: "+name+"\n    higher_is_better: "+dir)(minimal)), name+".yaml")
			Expect(err).NotTo(HaveOccurred(), name)
		}
	})
})

// minimal is a valid task file the table edits.
const minimal = `name: t1
version: "1"
prompt: "{{.source}} ###>"
reference_field: target
stop: ["\n"]
max_new_tokens: 130
format:
  single_line: true
metrics:
  - name: bleu
    higher_is_better: true
dataset:
  dir: data/fren
  split: test
`

func rep(old, new string) func(string) string {
	return func(s string) string {
		Expect(s).To(ContainSubstring(old))
		return strings.Replace(s, old, new, 1)
	}
}
