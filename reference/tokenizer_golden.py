#!/usr/bin/env python3
"""Write the Llama 2 tokenizer golden file for engine/tokenizer.

Run on a machine that has transformers and tokenizers, from the repository
root, with the Makefile's tokenizer in .cache/tokenizer (tokenizer.json and
tokenizer_config.json):

    python3 reference/tokenizer_golden.py --tokenizer-dir .cache/tokenizer \
        --out engine/tokenizer/testdata/llama2_golden.jsonl

The reference is transformers' LlamaTokenizerFast with legacy=True. Each
encode case records, for one deterministic input string:

    ids        tok.encode(text)                           (BOS included)
    ids_nobos  tok.encode(text, add_special_tokens=False)
    dec        tok.decode(ids, skip_special_tokens=False)
    dec_nobos  tok.decode(ids_nobos, skip_special_tokens=False)

Decode cases ({"decode_ids": [...], "dec": ...}) run the decoder on random
id sequences (byte tokens that do not form UTF-8, special tokens in the
middle, ...). The first line is {"meta": {...}} with the library versions
and the backend pipeline that transformers actually used. Where the plain
`tokenizers` library reading tokenizer.json disagrees with transformers, the
case also carries raw_ids / raw_ids_nobos / raw_dec so that the difference
is visible; the Go tokenizer must match the transformers fields.

`--dry-run` only generates the strings and prints statistics (no
transformers needed), to check the script where the libraries are missing.
The output is gzipped when the file would exceed 2 MB.
"""

import argparse
import gzip
import json
import os
import random
import sys

SEED = 20261126
N_MIXED = 1900  # random mixes; with the fixed cases this gives > 2,000 strings
N_DECODE = 400  # random id sequences for the decoder

ENGLISH = r"""\
The quick brown fox jumps over the lazy dog.
Hello, world!
I can't believe it's already November.
She sells sea shells by the sea shore.
To be, or not to be: that is the question.
The committee will meet on Tuesday at 3:30 p.m. in room 204.
Please don't forget to bring your laptop, charger, and notebook.
He said, "It's not my fault," and walked away.
What time does the train leave for Boston?
Our revenue grew by 12.5% year-over-year, reaching $4.2 billion.
The mitochondria is the powerhouse of the cell.
A journey of a thousand miles begins with a single step.
They're going to the park; we're staying home.
It was the best of times, it was the worst of times.
In 1969, Neil Armstrong became the first person to walk on the Moon.
Machine learning models can overfit when the training set is small.
The recipe calls for 2 cups of flour, 1 tsp of salt, and 3 eggs.
Can you recommend a good book about the history of mathematics?
The weather today is sunny with a high of 75 degrees Fahrenheit.
Low-rank adaptation reduces the number of trainable parameters dramatically.
My grandmother's garden was full of roses, tulips and daffodils.
Don't count your chickens before they hatch.
The server returned an HTTP 503 error at 02:17 UTC.
Why is the sky blue? Because of Rayleigh scattering.
Please summarize the following article in three sentences.
The cat sat on the mat, and the dog lay by the fire.
According to the report, unemployment fell to 3.7 percent.
We hold these truths to be self-evident, that all men are created equal.
The Eiffel Tower is 330 metres tall.
Every good boy deserves fudge.
She'd've come if she'd known.
The patient's blood pressure was 120/80 mmHg.
Are you sure you want to delete this file? This action cannot be undone.
Once upon a time, in a land far, far away, there lived a young princess.
The stock market closed higher on Friday after a volatile week.
Transformers use self-attention to model long-range dependencies.
I'd like a cup of coffee, black, no sugar.
The museum is open from 9 a.m. to 5 p.m., Monday through Saturday.
Programming in Go is simple, fast, and fun.
Water boils at 100 degrees Celsius at sea level.
The library closes early on holidays.
Could you please pass the salt?
Antidisestablishmentarianism is a very long word.
Pneumonoultramicroscopicsilicovolcanoconiosis is even longer.
The meeting has been rescheduled to next Wednesday.
Thank you for your order! Your package will arrive in 3-5 business days.
The lighthouse keeper watched the storm roll in from the north.
Photosynthesis converts light energy into chemical energy.
He ran 26.2 miles in under three hours.
The password must contain at least 8 characters, including a number.
Ladies and gentlemen, welcome aboard flight 237 to San Francisco.
The human genome contains about 3 billion base pairs.
I think, therefore I am.
It's raining cats and dogs outside.
Please review the attached document and send me your comments by Friday.
The orchestra played Beethoven's Ninth Symphony.
My favorite colors are blue, green, and purple.
The Amazon rainforest produces about 20% of the world's oxygen.
Quantum computers exploit superposition and entanglement.
The children built a sandcastle on the beach.
Breaking news: a magnitude 6.1 earthquake struck the region overnight.
You miss 100% of the shots you don't take.
The annual conference attracted over 10,000 attendees.
What's the difference between a crocodile and an alligator?
The spacecraft entered orbit around Mars after a seven-month journey.
Nothing in life is to be feared, it is only to be understood.
The bakery on Main Street sells the best croissants in town.
Turn left at the second traffic light, then continue straight for 2 km.
The algorithm runs in O(n log n) time.
She graduated summa cum laude from Harvard in 2015.
Mix the ingredients thoroughly and bake for 25 minutes at 180 degrees.
The lion is known as the king of the jungle.
Backpropagation computes gradients efficiently using the chain rule.
The concert was cancelled due to heavy rain.
Always look on the bright side of life.
The invoice total is $1,234.56, due within 30 days.
Shakespeare wrote 37 plays and 154 sonnets.
Please keep your seatbelt fastened while seated.
The new smartphone features a 6.7-inch OLED display.
I'm sorry, but I don't understand the question.
Two roads diverged in a yellow wood.
The volcano erupted, sending ash 10 kilometres into the sky.
The quick brown fox didn't jump; it strolled.
Rome wasn't built in a day.
The restaurant offers vegetarian, vegan, and gluten-free options.
Climate change is one of the greatest challenges of our time.
All that glitters is not gold.
The bridge was closed for repairs until further notice.
Knowledge is power.
The professor asked the students to submit their essays online.
How many roads must a man walk down before you call him a man?
The dataset contains 50,000 labelled images in 10 classes.
Honesty is the best policy.
He whispered, "See you tomorrow."
The garden gnome stared silently at the pond.
An apple a day keeps the doctor away.
Set the oven to 350F and grease the pan.
This sentence has    several   irregular    spaces.
Tabs\tseparate\tthese\twords.
Line one\nLine two\nLine three
Trailing spaces here   
   Leading spaces here
The end.
Ask not what your country can do for you, ask what you can do for your country.
The early bird catches the worm, but the second mouse gets the cheese.
Large language models are trained on trillions of tokens.
The firmware update fixed a bug in the Bluetooth stack.
Remember to water the plants while I'm away.
The marathon starts at 7:00 sharp.
He was born on the 4th of July, 1990.
The CEO announced record profits for Q3.
The hiking trail is 12 miles long and very steep.
I've been learning to play the guitar for two years.
The film won three Academy Awards, including Best Picture.
Data is the new oil.
Keep calm and carry on.
The river flows gently through the valley.
Let's meet at the café around noon.
The treaty was signed in Paris in 1783.
Please enter your username and password.
The moon orbits the Earth every 27.3 days.
Hard work beats talent when talent doesn't work hard.
The printer on the third floor is out of toner again.
Winter is coming.
The fastest land animal is the cheetah.
Be the change you wish to see in the world.
She opened the window and let in the cool morning air.
The software license expires on 12/31/2025.
In the beginning God created the heaven and the earth.
Good morning! How did you sleep?
The elephant never forgets.
A picture is worth a thousand words.
The results were statistically significant (p < 0.05).
Grab your coat; it's cold outside.
The wolf howled at the full moon.
Please remain seated until the aircraft has come to a complete stop.
He's a jack of all trades, master of none.
"""

FRENCH = """\
Bonjour, comment allez-vous aujourd'hui ?
Je m'appelle Élodie et j'habite à Montréal.
Tu es le seul client du magasin.
Il fait très beau ce matin, n'est-ce pas ?
Où est la gare, s'il vous plaît ?
Le château de Versailles a été construit au XVIIe siècle.
J'ai mangé une crêpe au chocolat à la fête foraine.
Nous étions déjà partis quand il est arrivé.
Ça ne fait rien, ce n'est pas grave.
L'été dernier, nous avons visité la Côte d'Azur.
Le garçon a reçu un cadeau pour son anniversaire.
Elle a acheté des pêches, des poires et des abricots.
La réunion est prévue à 14 h 30 dans la salle B.
Il était une fois une princesse qui vivait dans un château.
Je ne sais pas où j'ai mis mes clés.
Voulez-vous du thé ou du café ?
Les élèves préparent leur examen de français.
Le cœur a ses raisons que la raison ne connaît point.
Après la pluie, le beau temps.
Il faut cultiver notre jardin.
Je pense, donc je suis.
Noël approche : les rues sont illuminées.
Mon frère aîné travaille comme ingénieur à Lyon.
Qu'est-ce que tu veux faire ce week-end ?
La boulangerie ouvre à sept heures du matin.
Le prix est de 19,99 € TTC.
Il a neigé toute la nuit dans les Alpes.
Les enfants jouent dans la cour de l'école.
Pourriez-vous m'indiquer le chemin de la bibliothèque ?
Ce film est vraiment époustouflant !
Le français est une langue romane.
Je voudrais réserver une table pour deux personnes.
L'hôpital se trouve à côté de la mairie.
Où as-tu passé tes vacances d'été ?
La tour Eiffel mesure environ 330 mètres.
Nous avons dégusté du fromage et du vin rouge.
Les feuilles tombent en automne.
Il est interdit de fumer dans ce bâtiment.
Merci beaucoup pour votre aide précieuse !
Il y a un chat noir sur le toit.
La mer était agitée et le ciel était gris.
Je suis désolé, je ne comprends pas.
Quelle heure est-il ?
Le musée du Louvre abrite la Joconde.
Ils se sont rencontrés à Paris en 2010.
L'œuvre de Molière reste très populaire.
Veuillez patienter, un conseiller va vous répondre.
Le train à grande vitesse relie Paris à Marseille en trois heures.
J'aime me promener au bord de la Seine.
Les maïs et les blés poussent dans les champs.
Un éléphant, ça trompe énormément.
À bientôt, et bonne journée !
Elle s'est levée très tôt pour voir le lever du soleil.
Le professeur a expliqué la leçon avec patience.
Il n'y a plus de pain à la boulangerie.
Nous partirons en vacances dès que possible.
Ce gâteau est délicieux ; peux-tu me donner la recette ?
La Révolution française a commencé en 1789.
Je préfère les romans policiers aux romans d'amour.
Où se trouve la pharmacie la plus proche ?
Le vieux pêcheur raconte des histoires de la mer.
Les électeurs se rendront aux urnes dimanche prochain.
Tu as vu le dernier épisode de la série ?
Il faut être prudent sur la route quand il pleut.
Le bébé dort paisiblement dans son berceau.
Ma sœur et moi sommes allées au marché.
Les abeilles produisent du miel.
C'est la vie !
Il est né le 1er janvier 2000 à Besançon.
Je t'aime plus que tout au monde.
La forêt était silencieuse sous la neige.
Ne remets pas à demain ce que tu peux faire aujourd'hui.
Le directeur a félicité toute l'équipe.
Quel temps fera-t-il demain ?
Déjà vu, naïve, façade, garçon, Noël, coïncidence.
ÉCOLE, ÉTÉ, À L'ÉGLISE, ÇA VA, ÎLE, CŒUR.
"""

OTHER = """\
Guten Morgen! Wie geht es Ihnen? Die Straße ist sehr schön.
Fußgänger müssen die Ampel beachten. Äpfel, Öl und Übung.
¿Dónde está la biblioteca? ¡Qué sorpresa! El niño comió piña.
Olá, tudo bem? A situação é complicada, não é?
Ciao, come stai? Perché no? Città, università, caffè.
Привет, как дела? Москва — столица России.
Съешь же ещё этих мягких французских булок, да выпей чаю.
Καλημέρα! Η Ελλάδα είναι όμορφη χώρα.
今天天气很好，我们去公园散步吧。
我爱北京天安门。人工智能正在改变世界。
東京は日本の首都です。今日はいい天気ですね。
こんにちは、世界！ひらがなとカタカナと漢字。
ラーメンを食べに行きましょう。
안녕하세요, 만나서 반갑습니다. 한국어는 재미있어요.
서울은 대한민국의 수도입니다.
مرحبا بالعالم. كيف حالك اليوم؟
שלום עולם! מה שלומך?
नमस्ते दुनिया। आप कैसे हैं?
สวัสดีครับ ยินดีที่ได้รู้จัก
Xin chào! Tôi là người Việt Nam.
Merhaba dünya! Nasılsın? Çok güzel, teşekkürler.
Cześć! Jak się masz? Zażółć gęślą jaźń.
Příliš žluťoučký kůň úpěl ďábelské ódy.
Hyvää huomenta! Kiitos paljon.
Jag älskar kanelbullar och kaffe på söndagar.
Tere hommikust! Ma armastan Eestit.
"""

CODE = [
    'func main() {\n\tfmt.Println("hello, world")\n}\n',
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    '{"name": "loramix", "version": "0.1.0", "tags": ["lora", "llama"]}',
    "<html><head><title>Test</title></head><body><p class=\"x\">Hi</p></body></html>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "x = [i**2 for i in range(10) if i % 2 == 0]",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "git commit -m 'Fix off-by-one error in tokenizer' && git push origin main",
    "curl -sSL https://example.com/install.sh | bash -s -- --prefix=/usr/local",
    "const add = (a, b) => a + b; console.log(add(2, 3));",
    "if err != nil {\n\t\treturn fmt.Errorf(\"load %s: %w\", path, err)\n\t}",
    "    indented with four spaces\n        and eight\n\t\tand two tabs",
    "matrix = [[1, 2, 3],\n          [4, 5, 6]]",
    "export PATH=$HOME/go/bin:$PATH; echo $PATH",
    "a := map[string][]int{\"x\": {1, 2}, \"y\": nil}",
    "// TODO(alice): handle the edge case where len(xs) == 0",
    "/* multi-line\n * comment\n */",
    "SELECT * FROM t WHERE s LIKE '%_%' ESCAPE '\\';",
    "$ ls -la /tmp | grep -v '^total' | awk '{print $9}'",
    "https://www.example.org/path/to/page?query=1&lang=fr#section-2",
    "user.name+tag@sub.example.co.uk",
    "C:\\Users\\Public\\Documents\\report_final(2).docx",
    "lambda x: x[::-1] if isinstance(x, str) else None",
    "@decorator\nclass Foo(Bar, metaclass=ABCMeta):\n    __slots__ = ('a', 'b')",
    "return a<<3 | b>>2 & ~c ^ d;",
    "std::vector<std::pair<int, std::string>> v{{1, \"one\"}};",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><root attr='1'/>",
    "| col1 | col2 |\n|------|------|\n| a    | b    |",
]

NUMBERS = [
    "0", "1", "12", "123", "1234", "12345", "1234567890", "3.14159265358979",
    "-42", "+7", "1,000,000", "1.000.000,50", "1e-9", "6.022e23", "0x1F", "0b1010",
    "007", "2024-11-26", "12:34:56", "99.9%", "$19.99", "€5", "¥1000", "£3.50",
    "1/2", "3/4 cup", "10^6", "2^31 - 1 = 2147483647", "(555) 123-4567", "+33 1 23 45 67 89",
    "IV", "MMXXIV", "1st 2nd 3rd 4th", "000000", "11111111111111111111",
    "3 + 4 = 7", "√2 ≈ 1.41421", "π ≈ 3.14", "∑_{i=1}^{n} i = n(n+1)/2", "½ ¼ ¾",
]

EMOJI = [
    "😀", "😂🤣", "👍🏽", "❤️", "🇫🇷", "🇺🇸🇯🇵", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🤖 robots", "I ❤ NY",
    "🍕🍔🍟", "🚀 to the moon 🌕", "✔️ done", "⚠️ warning", "☕", "🙏", "🎉🎊", "🐍 Python", "🦀 Rust",
    "😀😃😄😁😆😅", "🧑‍💻", "✨✨✨", "👋 Hello!", "🌍🌎🌏", "🔥" * 5,
]

CONTROL = [
    "\x00", "a\x00b", "\x01\x02\x03", "\x07bell", "\x08backspace", "\x1b[31mred\x1b[0m",
    "\x7f", "\x0b\x0c", "\r\n", "line\r\nline", "\r", "\u0085", "\u2028\u2029", "\u200b",
    "\u200d", "\ufeffBOM", "\u00a0nbsp\u00a0", "\u3000ideographic", "\u2009thin", "soft\u00adhyphen",
    "e\u0301", "n\u0303", "\ufffd", "\uffff", "\U0010ffff", "\U0001d400\U0001d401",
    "\x1f\x1e", "tab\there", "\t\t\t", "\n\n\n", "\t \n \t", "a\tb\nc\rd",
]

WHITESPACE = [
    "", " ", "  ", "   ", "    ", "        ", " " * 16, " " * 33, "\t", "\n", " \n ", "\n ",
    " \t", "\t ", "  \n\n  ", "a  b", "a   b", "a    b", "a" + " " * 9 + "b", " a", "  a", "a ", "a  ",
    " a ", "  Hello  world  ", " Hello", "Hello ", "Hello\n", "\nHello", "\tHello", "Hello\t",
    " " * 5 + "x" + " " * 5,
]

SPECIAL = [
    "<s>", "</s>", "<unk>", "<s>Hello", "Hello<s>", "Hello <s>.", "<s> Hello", "Hello</s>",
    "Hello </s>", "a</s>b", "<s><s>", "</s></s>", "<s></s>", "<<s>>", "< s>", "<s", "s>",
    "</s", "<S>", "<s >", "<unk>text<unk>", " <s>", "<s> ", " <s> ", "<s>\n", "\n<s>",
    "text <s> text </s> text", "<s>[INST] Hi [/INST]", "<0x41>", "<0xFF>", "▁", "▁▁", "▁Hello",
    "Hello▁world", "▁ ▁", " ▁", "▁ ", "</s><s>", "<unk><s></s>", "x<s>y</s>z<unk>w",
    "<s><s>Hello</s></s>", "<|endoftext|>", "<pad>", "[INST]", "<<SYS>>\nBe nice.\n<</SYS>>",
]

PROMPTS = [
    "### Human: Hello!### Assistant:",
    "### Human: Hello!### Assistant: Hi! How can I help you today?",
    "### Human: What is the capital of France?### Assistant: Paris.",
    "### Human: Translate to French: I love cheese.### Assistant: J'adore le fromage.",
    "Tu es le seul client du magasin. ###>",
    "Tu es le seul client du magasin. ###> You are the only customer in the store.",
    "### Human:\n### Assistant:\n",
    "###>",
    "###> ",
    " ###>",
    "### Human: Hello!### Assistant:</s>",
    "<s>### Human: Hello!### Assistant:",
    "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]",
    "Question: 2+2=?\nAnswer:",
    "Translate English to French:\nsea otter => loutre de mer\ncheese =>",
]

WORDS = (
    "the of and to a in is you that it he was for on are as with his they I at be this have from or one had by "
    "word but not what all were we when your can said there use an each which she do how their if will up other "
    "about out many then them these so some her would make like him into time has look two more write go see "
    "number no way could people my than first water been call who oil its now find long down day did get come "
    "made may part tokenizer adapter LoRA Llama quantization merging benchmark throughput latency "
    "maison voiture être été où déjà très après français garçon nœud hôtel forêt fenêtre "
    "東京 北京 한국 日本語 中文 Москва Ελλάδα"
).split()

FRAGMENTS = [
    "(", ")", "[", "]", "{", "}", "<", ">", "\"", "'", "`", "...", "--", "—", "–", "!", "?", ".", ",", ";", ":",
    "#", "##", "###", "@", "&", "%", "*", "/", "\\", "|", "~", "^", "_", "__init__", "=>", "->", "::", "!=",
    "«", "»", "“", "”", "‘", "’", "…", "•", "©", "®", "™", "°", "±", "×", "÷",
]


def lines(block):
    return [s.replace("\\t", "\t").replace("\\n", "\n") for s in block.splitlines()]


def fixed_cases():
    cases = []
    for group in (WHITESPACE, SPECIAL, PROMPTS, lines(ENGLISH), lines(FRENCH), lines(OTHER),
                  CODE, NUMBERS, EMOJI, CONTROL):
        cases.extend(group)
    # Paragraphs: long inputs exercise the whole-text BPE.
    rng = random.Random(SEED + 1)
    eng, fr = lines(ENGLISH), lines(FRENCH)
    for n in (5, 20, 60):
        cases.append(" ".join(rng.choice(eng) for _ in range(n)))
        cases.append("\n".join(rng.choice(fr) for _ in range(n)))
    cases.append("\n\n".join(" ".join(rng.choice(eng) for _ in range(8)) for _ in range(12)))
    return cases


def mixed_cases(n):
    rng = random.Random(SEED)
    sentences = lines(ENGLISH) + lines(FRENCH) + lines(OTHER)
    pools = [
        (sentences, 6), (WORDS, 6), (FRAGMENTS, 3), (NUMBERS, 2), (EMOJI, 2), (CONTROL, 1),
        (WHITESPACE, 2), (SPECIAL, 1), (PROMPTS, 1), (CODE, 1),
    ]
    weights = [w for _, w in pools]
    seps = [" ", " ", " ", "", "\n", "\t", "  ", "   ", ", ", ". ", " \n", "\n\n"]
    out = []
    for _ in range(n):
        k = rng.randint(1, 8)
        parts = []
        for _ in range(k):
            pool = rng.choices(pools, weights)[0][0]
            parts.append(rng.choice(pool))
        s = parts[0]
        for p in parts[1:]:
            s += rng.choice(seps) + p
        r = rng.random()
        if r < 0.1:
            s = " " * rng.randint(1, 4) + s
        elif r < 0.2:
            s = s + " " * rng.randint(1, 4)
        elif r < 0.25:
            # a random slice of characters, to cut words and byte sequences anywhere
            a = rng.randint(0, len(s))
            s = s[a:a + rng.randint(0, 40)]
        out.append(s)
    return out


def decode_cases(n, vocab_size, byte_ids, special_ids):
    rng = random.Random(SEED + 2)
    out = []
    for _ in range(n):
        k = rng.randint(0, 24)
        ids = []
        for _ in range(k):
            r = rng.random()
            if r < 0.35:
                ids.append(rng.choice(byte_ids))
            elif r < 0.45:
                ids.append(rng.choice(special_ids))
            else:
                ids.append(rng.randrange(vocab_size))
        out.append(ids)
    # Byte sequences that are (in)complete UTF-8 around other tokens.
    e9 = [byte_ids[0xE6], byte_ids[0x97], byte_ids[0xA5]]  # 日
    out += [e9, e9[:2], [byte_ids[0xF0]], e9 + e9[:1], e9[:1] + [special_ids[1]] + e9[1:],
            [special_ids[1]], [special_ids[1], special_ids[1]], [29871], [29871, 29871], [259], []]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-dir", default=".cache/tokenizer")
    ap.add_argument("--out", default="engine/tokenizer/testdata/llama2_golden.jsonl")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()

    texts = fixed_cases() + mixed_cases(N_MIXED)
    seen, uniq = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            uniq.append(t)
    texts = uniq
    if args.dry_run:
        print(f"{len(texts)} strings, {sum(len(t) for t in texts)} chars")
        for t in texts[:5] + texts[-5:]:
            print(repr(t))
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tokenizers
    import transformers
    from transformers import LlamaTokenizerFast

    try:
        tok = LlamaTokenizerFast.from_pretrained(args.tokenizer_dir, legacy=True)
    except Exception as e:  # older or newer loaders: build it from the files
        print("from_pretrained failed:", repr(e))
        cfg = json.load(open(os.path.join(args.tokenizer_dir, "tokenizer_config.json")))
        tok = LlamaTokenizerFast(tokenizer_file=os.path.join(args.tokenizer_dir, "tokenizer.json"), legacy=True,
                                 add_bos_token=cfg.get("add_bos_token", True),
                                 add_eos_token=cfg.get("add_eos_token", False))
    raw = tokenizers.Tokenizer.from_file(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    try:
        backend = json.loads(tok.backend_tokenizer.to_str())
    except Exception as e:
        print("backend_tokenizer:", repr(e))
        backend = {}
    meta = {
        "reference": "transformers.LlamaTokenizerFast.from_pretrained(dir, legacy=True)",
        "decode": "decode(ids, skip_special_tokens=False)",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "class": type(tok).__name__,
        "legacy": getattr(tok, "legacy", None),
        "add_bos_token": getattr(tok, "add_bos_token", None),
        "add_eos_token": getattr(tok, "add_eos_token", None),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "unk_token_id": tok.unk_token_id,
        "vocab_size": tok.vocab_size,
        "len": len(tok),
        "pipeline": {k: backend.get(k) for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder")},
        "added_tokens": backend.get("added_tokens"),
        "seed": SEED,
    }

    records, diffs = [], 0
    for i, t in enumerate(texts):
        ids = tok.encode(t)
        nob = tok.encode(t, add_special_tokens=False)
        rec = {
            "i": i, "text": t, "ids": ids, "ids_nobos": nob,
            "dec": tok.decode(ids, skip_special_tokens=False),
            "dec_nobos": tok.decode(nob, skip_special_tokens=False),
        }
        r_ids = raw.encode(t).ids
        r_nob = raw.encode(t, add_special_tokens=False).ids
        r_dec = raw.decode(ids, skip_special_tokens=False)
        if r_ids != ids or r_nob != nob or r_dec != rec["dec"]:
            diffs += 1
            rec.update(raw_ids=r_ids, raw_ids_nobos=r_nob, raw_dec=r_dec)
        records.append(rec)

    vocab = tok.get_vocab()
    byte_ids = [vocab[f"<0x{b:02X}>"] for b in range(256)]
    special_ids = [tok.unk_token_id, tok.bos_token_id, tok.eos_token_id]
    ddiffs = 0
    for j, ids in enumerate(decode_cases(N_DECODE, tok.vocab_size, byte_ids, special_ids)):
        rec = {"i": len(records), "decode_ids": ids, "dec": tok.decode(ids, skip_special_tokens=False)}
        r_dec = raw.decode(ids, skip_special_tokens=False)
        if r_dec != rec["dec"]:
            ddiffs += 1
            rec["raw_dec"] = r_dec
        records.append(rec)

    meta["encode_cases"] = len(texts)
    meta["decode_cases"] = len(records) - len(texts)
    meta["raw_tokenizers_differs"] = {"encode_cases": diffs, "decode_cases": ddiffs}
    body = json.dumps({"meta": meta}, ensure_ascii=False) + "\n"
    body += "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    data = body.encode("utf-8")
    out = args.out
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    if len(data) > 2 << 20:
        out += ".gz"
        with gzip.GzipFile(out, "wb", mtime=0) as f:
            f.write(data)
    else:
        with open(out, "wb") as f:
            f.write(data)
    print(json.dumps(meta, ensure_ascii=False, indent=1))
    print(f"wrote {out}: {len(texts)} encode cases, {meta['decode_cases']} decode cases, "
          f"{len(data)} bytes uncompressed; raw tokenizers differs on {diffs} encode, {ddiffs} decode")
    # A few examples to eyeball in the log.
    for t in ["Hello <s>.", " Hello", "<s>Hello", "", "▁Hello", "### Human: Hello!### Assistant:"]:
        print(repr(t), tok.encode(t), raw.encode(t).ids)


if __name__ == "__main__":
    sys.exit(main())
