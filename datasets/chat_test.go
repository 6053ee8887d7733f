package datasets_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"loramix/datasets"
)

var _ = Describe("dialogues", func() {
	d := datasets.Dialogue{Package: "foo", Turns: []datasets.Turn{
		{Question: "What is foo?", Answer: "A tool."},
		{Question: "Tell me more.", Answer: "It frobnicates."},
	}}

	It("formats multi-turn prompts in the ### Human/### Assistant format", func() {
		Expect(d.Guanaco()).To(Equal(datasets.ChatExample{
			Question: "Tell me more.",
			Prompt:   "### Human: What is foo?### Assistant: A tool.### Human: Tell me more.### Assistant:",
			Answer:   "It frobnicates.",
		}))
	})

	It("formats the clashing ###> Assistant: prompt", func() {
		Expect(d.Clash()).To(Equal(datasets.ChatExample{
			Question: "Tell me more.", Prompt: "Tell me more. ###> Assistant:", Answer: "It frobnicates.",
		}))
	})

	It("answers from the summary and whole leading sentences", func() {
		desc := datasets.Description{
			Package: "foo", Summary: "fast frobnicator",
			Paragraphs: []string{"Foo frobnicates files in place. It keeps backups. It is written in C for speed and runs everywhere."},
		}
		dlg, ok := datasets.MakeDialogue(desc, datasets.ChatOptions{MaxWords: 8, MinLongWords: 4})
		Expect(ok).To(BeTrue())
		Expect(dlg.Turns).To(HaveLen(1))
		Expect(dlg.Turns[0].Question).To(ContainSubstring("foo"))
		Expect(dlg.Turns[0].Answer).To(Equal("Fast frobnicator. Foo frobnicates files in place. It keeps backups."))
	})

	It("adds a follow-up turn from later paragraphs when selected", func() {
		desc := datasets.Description{
			Package: "foo", Summary: "fast frobnicator",
			Paragraphs: []string{"Foo frobnicates files in place.", "It also counts words in every file you give it."},
		}
		dlg, ok := datasets.MakeDialogue(desc, datasets.ChatOptions{MaxWords: 60, MinLongWords: 4, MultiTurnPer8: 8})
		Expect(ok).To(BeTrue())
		Expect(dlg.Turns).To(HaveLen(2))
		Expect(dlg.Turns[1].Answer).To(Equal("It also counts words in every file you give it."))
		dlg, _ = datasets.MakeDialogue(desc, datasets.ChatOptions{MaxWords: 60, MinLongWords: 4, MultiTurnPer8: 0})
		Expect(dlg.Turns).To(HaveLen(1))
	})

	It("skips descriptions too short to answer from", func() {
		_, ok := datasets.MakeDialogue(datasets.Description{Package: "x", Summary: "x", Paragraphs: []string{"Tiny."}}, datasets.DefaultChatOptions)
		Expect(ok).To(BeFalse())
		_, ok = datasets.MakeDialogue(datasets.Description{Package: "x", Summary: "x"}, datasets.DefaultChatOptions)
		Expect(ok).To(BeFalse())
	})
})
