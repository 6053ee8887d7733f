package datasets

import (
	"crypto/sha256"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Turn is one question and its answer.
type Turn struct{ Question, Answer string }

// Dialogue is a conversation about one package; the last turn is the one a
// model is asked to answer.
type Dialogue struct {
	Package string
	Turns   []Turn
}

// ChatExample is one line of oasst/*.jsonl and clash/*.jsonl: the last
// question, the full formatted prompt that ends where the answer begins, and
// the reference answer.
type ChatExample struct {
	Question string `json:"question"`
	Prompt   string `json:"prompt"`
	Answer   string `json:"answer"`
}

// Guanaco formats a dialogue as "### Human: q1### Assistant: a1### Human: q2### Assistant:"
// and returns the prompt (earlier turns with their answers, then the last
// question) and the last answer. Training appends " "+answer+"</s>" to the prompt.
func (d Dialogue) Guanaco() ChatExample {
	var b strings.Builder
	last := d.Turns[len(d.Turns)-1]
	for i, t := range d.Turns {
		b.WriteString("### Human: " + t.Question + "### Assistant:")
		if i < len(d.Turns)-1 {
			b.WriteString(" " + t.Answer)
		}
	}
	return ChatExample{Question: last.Question, Prompt: b.String(), Answer: last.Answer}
}

// Clash formats the last turn in the clashing format "q ###> Assistant:", which
// shares the "###>" marker with the translation format "<French> ###><English>".
func (d Dialogue) Clash() ChatExample {
	last := d.Turns[len(d.Turns)-1]
	return ChatExample{Question: last.Question, Prompt: last.Question + " ###> Assistant:", Answer: last.Answer}
}

var (
	firstQuestions = []string{
		"What is the %s package?",
		"What does %s do?",
		"Can you tell me about %s?",
		"What is %s used for?",
		"Describe the Debian package %s.",
	}
	followUps = []string{
		"Tell me more.",
		"What else can it do?",
		"Can you give more details?",
		"What else should I know about it?",
	}
)

// ChatOptions shape the dialogues made from descriptions.
type ChatOptions struct {
	MaxWords      int // an answer stops at the sentence that reaches this many words
	MinLongWords  int // descriptions whose long text is shorter are skipped
	MultiTurnPer8 int // out of 8 eligible descriptions (by hash), how many become two-turn
}

// DefaultChatOptions gives answers of one to a few sentences.
var DefaultChatOptions = ChatOptions{MaxWords: 60, MinLongWords: 8, MultiTurnPer8: 3}

// MakeDialogue turns an English description into a dialogue: the question asks
// about the package, the answer is the summary followed by the first sentences
// of the long description. When the description has a second paragraph and the
// hash of the package name selects it, a follow-up turn answers from the later
// paragraphs. ok is false for descriptions too short to answer from.
func MakeDialogue(d Description, opt ChatOptions) (Dialogue, bool) {
	if len(d.Paragraphs) == 0 || len(strings.Fields(d.Paragraphs[0])) < opt.MinLongWords {
		return Dialogue{}, false
	}
	h := sha256.Sum256([]byte(d.Package))
	q := strings.Replace(firstQuestions[int(h[0])%len(firstQuestions)], "%s", d.Package, 1)
	first := sentence(d.Summary) + " " + takeSentences(d.Paragraphs[0], opt.MaxWords)
	dlg := Dialogue{Package: d.Package, Turns: []Turn{{q, strings.TrimSpace(first)}}}
	if len(d.Paragraphs) > 1 && int(h[1])%8 < opt.MultiTurnPer8 {
		more := takeSentences(strings.Join(d.Paragraphs[1:], " "), opt.MaxWords)
		if len(strings.Fields(more)) >= opt.MinLongWords {
			dlg.Turns = append(dlg.Turns, Turn{followUps[int(h[2])%len(followUps)], more})
		}
	}
	return dlg, true
}

// sentence capitalizes s and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "!") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}

// takeSentences returns the leading sentences of text, stopping after the
// sentence that brings the word count to maxWords or more. A sentence ends at
// '.', '!' or '?' followed by a space and an upper-case letter, or at the end
// of text. A sentence that would run past 2*maxWords is dropped; when the first
// sentence does, its first maxWords words are returned.
func takeSentences(text string, maxWords int) string {
	words := strings.Fields(text)
	lastEnd := 0 // words[:lastEnd] is whole sentences
	for i, w := range words {
		n := i + 1
		end := n == len(words)
		if !end && strings.ContainsAny(w[len(w)-1:], ".!?") {
			r, _ := utf8.DecodeRuneInString(words[n])
			end = unicode.IsUpper(r)
		}
		if end {
			lastEnd = n
			if n >= maxWords {
				break
			}
		}
		if n >= 2*maxWords {
			break
		}
	}
	if lastEnd == 0 {
		lastEnd = min(maxWords, len(words))
	}
	return strings.Join(words[:lastEnd], " ")
}
