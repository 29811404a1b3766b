"""Synthetic data for the tiny demo models: NIAH prompts, essay text, arithmetic.

Everything here is pure Python + stdlib and deterministic: the only randomness
is `random.Random`, seeded with ints (int seeding, `random()`, `getrandbits`
and `_randbelow` give the same stream on every platform and Python >= 3.2);
sub-seeds come from SHA-256, never from `hash()`.

Tokens are bytes: token ids = the UTF-8 bytes of the text (0..255), plus
BOS=256, EOS=257, PAD=258 (see `encode`). All text made here is ASCII, so one
character is one byte is one token.

NIAH (contract: /work/shared/SPEC-methods.md, "NIAH tasks"; RULER's
niah_single_1/2/3 and niah_multikey_1):
    prompt = intro + "\\n" + haystack-with-needle(s) + "\\n" + question + answer_prefix
Token budget of a sample: `n_tokens = bos + len(prompt bytes) + max_new_tokens`
(bos = 1 when the caller prepends BOS, the default; max_new_tokens defaults to
len(value) + 8). `niah_prompt` makes n_tokens == length exactly:
  1. whole haystack units (essay sentences; S1: copies of the noise passage,
     one per line) are added while they fit;
  2. the gap left is filled with the longest whole sentences that fit, taken
     from the next 32 units of the stream;
  3. then with one fragment: the longest prefix of whole sentences (S1) or of
     words closed by "." (essays) of one of those units that fits;
  4. the last few bytes (usually 0; at most ~20 for S1) are spaces appended
     to the last haystack unit.
Needles are inserted at a unit boundary (S1: as their own line, like RULER;
essays: as a sentence joined by a space). The target goes to the boundary
whose relative byte offset is nearest `depth`, where
    depth_actual = (needle start - haystack start) / (haystack bytes - needle bytes)
(0 = first thing in the haystack, 1 = last). mk distractors go first, at
random depths, so they count as haystack for the target's depth.
The prompts of one seed share key, value and haystack text across lengths and
depths (the haystack of a shorter prompt is a prefix of the longer one's, up to
the step 2-4 padding), and across tasks s2/s3/mk.

Arithmetic (CoT, single digits, left to right, intermediates in 0..max_value):
    Q: 7+5-3=?
    A: 7+5=12. 12-3=9. So the answer is 9.          (CoT, the SFT target)
    A: So the answer is 9.                          (direct, in the pre mix)
Train/test split: a question is in the test split iff crc32(question) % 10 == 0.

CLI: `python3 reference/data.py write-essays` rewrites assets/essays.txt;
`python3 reference/data.py arith-jsonl N PATH` writes the first N held-out
arithmetic problems (the eval's set) as JSONL {"prompt", "answer"} lines for
`qklab tune --answers` (the demo ships N = 300 as www/demo/arithmetic.jsonl);
`python3 reference/data.py demo` prints a few samples.
"""

import hashlib
import itertools
import os
import random
import re
import sys
import uuid
import zlib

try:
    from .essay_grammar import EssayGen, essay_text, split_sentences
except ImportError:  # imported as a top-level module (pytest, scripts)
    from essay_grammar import EssayGen, essay_text, split_sentences

BOS, EOS, PAD = 256, 257, 258
VOCAB_SIZE = 259

TASKS = ("s1", "s2", "s3", "mk")
DEFAULT_MK_DISTRACTORS = 8

HERE = os.path.dirname(os.path.abspath(__file__))
ESSAYS_PATH = os.path.join(HERE, "assets", "essays.txt")
ESSAYS_SEED = 0
ESSAYS_WORDS = 6000

# Seeds of the training NIAH documents start here, so that an eval sweep that
# uses seeds below 2**48 never meets a training prompt.
TRAIN_SEED_BASE = 1 << 48

# ------------------------------------------------------------------ word lists

ADJECTIVES = """
able ancient angry bald big bitter black blue bold brave bright brisk broad
brown busy calm careful cheap cheerful clean clear clever close cold cool
crisp curly damp dark dear deep dense dirty dry dull dusty eager early easy
empty even exact fair faint famous fancy fast fierce fine firm flat fond
free fresh friendly full funny gentle giant glad golden good grand gray
great green grim happy hard harsh heavy hidden high hollow honest hot huge
humble hungry icy idle jolly keen kind large late lazy lean light little
lively local lone long loose loud lovely low loyal lucky mellow merry mild
minor modern moist narrow neat new nice noble noisy odd old orange pale
plain polite poor proud pure purple quick quiet rapid rare raw ready red
rich rigid ripe rough round royal rural rusty sad safe salty sandy sharp
shiny short shy silent silly silver simple slim slow small smart smooth soft
solid sour spare steep stiff still stout strange strict strong sturdy sunny
sweet swift tall tame tender thick thin tidy tiny tough true upper urban
vast vivid warm weak wet white wide wild wise witty young yellow brief cozy
fuzzy grumpy hasty jagged mighty misty
""".split()

NOUNS = """
apple anchor arrow bakery ball banana barrel basket beach bear bell bench
berry bicycle bird blanket boat book bottle bowl box bread brick bridge
brush bucket butter button cabin cake camera candle canoe car carpet castle
cat chair cheese cherry chest cloud coat coin comet cookie corn cottage cow
crab crown cup curtain desk diamond dog doll door dragon drum duck eagle
engine falcon feather fence fiddle field flag flower flute forest fork
fountain fox frog garden gate ghost glove goat guitar hammer harbor hat
helmet hill horse house island jacket jar jewel kettle key kite ladder lake
lamp lantern leaf lemon lion lizard lobster magnet map marble meadow mirror
monkey moon mountain mouse mug nest notebook ocean onion orchard otter owl
oyster paddle painting palace pancake panda parrot peach pear pebble pencil
penguin pepper piano pillow planet plate pocket pond potato pumpkin puzzle
rabbit radio rainbow ribbon river robot rocket rose sail salad sandwich
scarf shell ship shoe shovel sled snail spider spoon squirrel star statue
stone sugar sweater table teapot tent tiger toast tomato tower tractor train
tree trumpet tulip turtle umbrella valley vase violin wagon wall walnut
whale whistle window wolf zebra lighthouse compass saddle quilt acorn
""".split()


# ------------------------------------------------------------------ templates

NOISE = ("The grass is green. The sky is blue. The sun is yellow. "
         "Here we go. There and back again.")


def value_kind(task):
    """'uuid' for S3, else 'number' (the word the templates use)."""
    return "uuid" if task == "s3" else "number"


def intro(task):
    t = value_kind(task)
    return (f"A special magic {t} is hidden within the following text. Make sure to "
            f"memorize it. I will quiz you about the {t} afterwards.")


def needle_text(task, key, value):
    return f"One of the special magic {value_kind(task)}s for {key} is: {value}."


def question(task, key):
    return f"What is the special magic {value_kind(task)} for {key} mentioned in the provided text?"


def answer_prefix(task, key):
    return f" The special magic {value_kind(task)} for {key} mentioned in the provided text is"


def value_len(task):
    return 36 if task == "s3" else 7


def default_max_new_tokens(task):
    return value_len(task) + 8


def encode(text, bos=True):
    """Token ids of `text`: [BOS] (if bos) + its UTF-8 bytes."""
    return ([BOS] if bos else []) + list(text.encode("utf-8"))


def decode(ids):
    """Text of token ids; specials (>= 256) are dropped."""
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def derive_seed(seed, label):
    """A 64-bit sub-seed for one purpose ('kv', 'haystack', ...) of a sample seed."""
    return int.from_bytes(hashlib.sha256(f"{label}:{seed}".encode()).digest()[:8], "little")


def make_value(task, rng):
    if task == "s3":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return str(rng.randrange(1_000_000, 10_000_000))


def score(generated_text, value):
    """RULER's rule: 1 if the value appears in the generated text, case-insensitively."""
    return int(value.lower() in generated_text.lower())


# ------------------------------------------------------------------ haystacks

_essay_file_sentences = None


def essay_file_sentences(path=ESSAYS_PATH):
    """The sentences of assets/essays.txt (or of another file the user drops in)."""
    global _essay_file_sentences
    if path != ESSAYS_PATH:
        with open(path, encoding="utf-8") as f:
            return split_sentences(f.read())
    if _essay_file_sentences is None:
        with open(path, encoding="utf-8") as f:
            _essay_file_sentences = split_sentences(f.read())
    return _essay_file_sentences


def haystack_units(task, seed, source="grammar"):
    """Infinite iterator of haystack units for a sample seed.

    s1: the noise passage, one copy per unit (joined by newlines).
    others: essay sentences (joined by spaces), from the grammar seeded by the
    sample seed, or with source="file" from assets/essays.txt starting at a
    seeded sentence and wrapping around; source may also be a path.
    """
    if task == "s1":
        return itertools.repeat(NOISE)
    hs = derive_seed(seed, "haystack")
    if source == "grammar":
        return EssayGen(hs).sentences()
    sents = essay_file_sentences(ESSAYS_PATH if source == "file" else source)
    start = hs % len(sents)
    return itertools.islice(itertools.cycle(sents), start, None)


def _fragments(unit, words_ok):
    """Candidate padding fragments of a unit: sentence prefixes, and (for essay
    units) word prefixes closed with '.'."""
    out = []
    sents = split_sentences(unit)
    for k in range(1, len(sents)):
        out.append(" ".join(sents[:k]))
    if words_ok:
        words = unit.split()
        for k in range(1, len(words)):
            w = " ".join(words[:k]).rstrip(",;:")
            out.append(w if w.endswith(".") else w + ".")
    return out


def _fill(units_iter, budget, used, words_ok):
    """Units whose join (+ `used` bytes of needles and their separators) is exactly
    `budget` bytes. See the module docstring for the four steps."""
    units = []
    look = []
    for u in units_iter:
        if used + len(u) + 1 > budget:
            look.append(u)
            break
        units.append(u)
        used += len(u) + 1
    look.extend(itertools.islice(units_iter, 31))
    # 2. whole sentences from the look-ahead
    while True:
        gap = budget - used
        fits = [u for u in look if len(u) + 1 <= gap]
        if not fits:
            break
        best = max(fits, key=len)
        look.remove(best)
        units.append(best)
        used += len(best) + 1
    # 3. one fragment
    gap = budget - used
    frags = [f for u in look for f in _fragments(u, words_ok) if len(f) + 1 <= gap]
    if frags:
        best = max(frags, key=len)
        units.append(best)
        used += len(best) + 1
    # 4. spaces
    r = budget - used
    if r > 0:
        if units:
            units[-1] += " " * r
        else:
            units.append(" " * (r - 1))
    return units


def _insertion_index(units, depth):
    """Boundary i (0..len) whose relative byte offset is nearest depth; with it
    the depth an item inserted there has."""
    d_total = sum(len(u) + 1 for u in units)  # = joined length + 1
    if d_total == 0:
        return 0, 0.0
    best_i, best_err, off = 0, None, 0
    for i in range(len(units) + 1):
        err = abs(off / d_total - depth)
        if best_err is None or err < best_err:
            best_i, best_err = i, err
        if i < len(units):
            off += len(units[i]) + 1
    off = sum(len(u) + 1 for u in units[:best_i])
    return best_i, off / d_total


def min_length(task, distractors=None, max_new_tokens=None, bos=True):
    """Smallest `length` niah_prompt accepts for every seed (longest key words)."""
    nd = _n_distractors(task, distractors)
    key = max(ADJECTIVES, key=len) + "-" + max(NOUNS, key=len)
    value = "9" * value_len(task)
    mnt = default_max_new_tokens(task) if max_new_tokens is None else max_new_tokens
    fixed = (int(bos) + len(intro(task)) + 2 + len(question(task, key))
             + len(answer_prefix(task, key)) + mnt)
    return fixed + (nd + 1) * (len(needle_text(task, key, value)) + 1) - 1


def _n_distractors(task, distractors):
    if distractors is None:
        return DEFAULT_MK_DISTRACTORS if task == "mk" else 0
    return distractors


def niah_prompt(task, length, depth, seed, distractors=None, max_new_tokens=None,
                bos=True, source="grammar"):
    """One NIAH sample whose token count bos + len(prompt bytes) + max_new_tokens
    equals `length` exactly.

    task: 's1' | 's2' | 's3' | 'mk'; depth in [0, 1]; seed: int.
    distractors: extra needles whose keys share the target's adjective (other
    nouns, other values), at random depths; default 8 for 'mk', 0 otherwise.
    max_new_tokens: default len(value) + 8.  source: 'grammar' | 'file' | path
    (essay haystack text). Raises ValueError when `length` is too small.

    Returns a dict: task, seed, length, depth, depth_actual, key, value, prompt,
    needle, needle_span (byte offsets [start, end) of the target needle in the
    prompt), distractors (list of (key, value)), max_new_tokens, bos, n_tokens.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {TASKS}")
    if not 0.0 <= depth <= 1.0:
        raise ValueError("depth must be in [0, 1]")
    nd = _n_distractors(task, distractors)
    if nd > len(NOUNS) - 1:
        raise ValueError("too many distractors")

    rng = random.Random(derive_seed(seed, "kv"))
    adj = rng.choice(ADJECTIVES)
    noun = rng.choice(NOUNS)
    key = f"{adj}-{noun}"
    value = make_value(task, rng)
    d_nouns = rng.sample([n for n in NOUNS if n != noun], nd)
    d_values, seen = [], {value}
    while len(d_values) < nd:
        v = make_value(task, rng)
        if v not in seen:
            seen.add(v)
            d_values.append(v)
    d_depths = [rng.random() for _ in range(nd)]
    distr = [(f"{adj}-{n}", v) for n, v in zip(d_nouns, d_values)]

    mnt = default_max_new_tokens(task) if max_new_tokens is None else max_new_tokens
    head = intro(task) + "\n"
    tail = "\n" + question(task, key) + answer_prefix(task, key)
    target = needle_text(task, key, value)
    needles = [target] + [needle_text(task, k, v) for k, v in distr]
    budget = length - (int(bos) + len(head) + len(tail) + mnt)
    used = sum(len(n) for n in needles) + len(needles) - 1
    if budget < used:
        raise ValueError(f"length {length} too small for task {task} with {nd} "
                         f"distractors (needs >= {length - budget + used})")

    units = _fill(haystack_units(task, seed, source), budget, used, words_ok=task != "s1")
    for nt, dd in zip(needles[1:], d_depths):
        i, _ = _insertion_index(units, dd)
        units.insert(i, nt)
    i, depth_actual = _insertion_index(units, depth)
    units.insert(i, target)

    sep = "\n" if task == "s1" else " "
    haystack = sep.join(units)
    prompt = head + haystack + tail
    start = len(head) + sum(len(u) + 1 for u in units[:i])
    assert prompt[start:start + len(target)] == target
    pb = prompt.encode("utf-8")
    assert len(pb) == len(prompt)  # ASCII: byte offsets = char offsets
    n_tokens = int(bos) + len(pb) + mnt
    assert n_tokens == length, (n_tokens, length)
    return {
        "task": task, "seed": seed, "length": length, "depth": depth,
        "depth_actual": depth_actual, "key": key, "value": value,
        "prompt": prompt, "needle": target,
        "needle_span": (start, start + len(target)),
        "distractors": distr, "max_new_tokens": mnt, "bos": bos,
        "n_tokens": n_tokens,
    }


def niah_sweep(task, lengths, depths, samples, seed0=0, **kw):
    """Yield niah_prompt for every (length, depth, sample); sample s uses seed seed0 + s,
    so one sample has the same key, value and haystack text at every length and depth."""
    for length in lengths:
        for depth in depths:
            for s in range(samples):
                yield niah_prompt(task, length, depth, seed0 + s, **kw)


# ------------------------------------------------------------------ arithmetic

ARITH_TEST_MOD = 10


def arith_split(question_text):
    """'test' iff crc32(question) % 10 == 0, else 'train'."""
    return "test" if zlib.crc32(question_text.encode()) % ARITH_TEST_MOD == 0 else "train"


def _arith_draw(rng, mul, max_value):
    n = rng.randint(2, 4)
    r = rng.randint(1, 9)
    expr = str(r)
    steps = []
    only_mul = True
    for _ in range(n - 1):
        options = {
            "+": [d for d in range(1, 10) if r + d <= max_value],
            "-": [d for d in range(1, 10) if r - d >= 0],
        }
        if mul and only_mul:  # x only before any + or -, so left to right = precedence
            options["x"] = [d for d in range(2, 10) if r * d <= max_value]
        ops = [o for o in ("+", "-", "x") if options.get(o)]
        op = rng.choice(ops)
        d = rng.choice(options[op])
        nr = r + d if op == "+" else r - d if op == "-" else r * d
        steps.append(f"{r}{op}{d}={nr}.")
        expr += f"{op}{d}"
        only_mul = only_mul and op == "x"
        r = nr
    q = f"Q: {expr}=?"
    cot = "A: " + " ".join(steps) + f" So the answer is {r}."
    return q, cot, str(r)


def arith_problem(rng, split="train", mul=False, max_value=20):
    """(question, cot_answer, final_answer) from the given split, e.g.
    ('Q: 7+5-3=?', 'A: 7+5=12. 12-3=9. So the answer is 9.', '9').
    2-4 operands 1..9, + and - (and x by 2..9 at the start when mul), every
    intermediate result in 0..max_value, evaluated left to right."""
    while True:
        p = _arith_draw(rng, mul, max_value)
        if arith_split(p[0]) == split:
            return p


def arith_direct(final):
    """The non-CoT answer line of the pre mix."""
    return f"A: So the answer is {final}."


def arith_prompt(question_text):
    """What an eval feeds the model: 'Q: 7+5-3=?\\nA:'."""
    return question_text + "\nA:"


def arith_test_set(n=500, seed=1234, mul=False, max_value=20):
    """n distinct held-out problems (test split), deterministic for a seed."""
    rng = random.Random(seed)
    out, seen = [], set()
    for _ in range(200 * n + 10_000):
        p = _arith_draw(rng, mul, max_value)
        if p[0] not in seen and arith_split(p[0]) == "test":
            seen.add(p[0])
            out.append(p)
            if len(out) == n:
                return out
    raise ValueError(f"only {len(out)} distinct test problems exist for these settings")


def arith_eval_pairs(n=500, seed=1234, mul=False, max_value=20):
    """The test set as (prompt_text, target_text) pairs in sft_example's format:
    ('Q: 7+5-3=?\\nA:', ' 7+5=12. 12-3=9. So the answer is 9.')."""
    return [(arith_prompt(q), cot[len("A:"):]) for q, cot, _ in arith_test_set(n, seed, mul, max_value)]


_ANSWER_RE = re.compile(r"So the answer is\s*(-?\d+)")


def arith_score(generated, final):
    """1 if the first number after 'So the answer is' equals final, else 0."""
    m = _ANSWER_RE.search(generated)
    return int(m is not None and m.group(1) == str(final))


def sft_example(rng, mul=False, max_value=20):
    """(prompt_text, target_text) for CoT SFT, loss on the target only; e.g.
    ('Q: 7+5-3=?\\nA:', ' 7+5=12. 12-3=9. So the answer is 9.'). Under 512 bytes;
    the caller appends EOS after the target."""
    q, cot, _ = arith_problem(rng, "train", mul, max_value)
    return arith_prompt(q), cot[len("A:"):]


# ------------------------------------------------------------------ LM documents

DEFAULT_MIX = {"niah": 0.5, "essay": 0.4, "arith": 0.1}
DEFAULT_NIAH_TASKS = {"s1": 0.25, "s2": 0.25, "s3": 0.25, "mk": 0.25}


def _weighted(rng, weights):
    names = sorted(weights)
    return rng.choices(names, [weights[k] for k in names])[0]


def essay_document(rng, max_len):
    """Essay paragraphs (blank-line separated), whole sentences, <= max_len bytes."""
    gen = EssayGen(rng.getrandbits(64))
    text = ""
    while True:
        para = gen.paragraph()
        sep = "\n\n" if text else ""
        for k, s in enumerate(para):
            add = (sep if k == 0 else " ") + s
            if len(text) + len(add) > max_len:
                return text if text else s[:max_len]
            text += add


def arith_document(rng, max_len, cot=0.0, mul=False, max_value=20):
    """Train-split problems, one 'Q: ...\\nA: ...' pair after another, <= max_len
    bytes; each answer is CoT with probability `cot`, else direct."""
    text = ""
    while True:
        q, c, f = arith_problem(rng, "train", mul, max_value)
        add = ("\n" if text else "") + q + "\n" + (c if rng.random() < cot else arith_direct(f))
        if len(text) + len(add) > max_len:
            return text if text else add[:max_len]
        text += add


def lm_document(rng, max_len, mix=None, niah_tasks=None, mk_distractors=(1, 8),
                arith_cot=0.0, mul=False):
    """One pre-training document (text, <= max_len bytes; the caller adds BOS/EOS).

    mix: weights of 'niah' | 'essay' | 'arith' (default DEFAULT_MIX).
    niah: a full NIAH prompt with its answer, prompt + " " + value + ".", of a
      task drawn by niah_tasks weights, length uniform in [min, max_len], depth
      uniform in [0, 1], mk distractors uniform in mk_distractors (fewer when
      max_len is short); seeds >= TRAIN_SEED_BASE. Falls back to essay text
      when max_len is too short for the drawn task.
    essay: grammar paragraphs. arith: train-split problems, CoT answers with
      probability arith_cot (default 0: the pre model sees direct answers only).
    """
    kind = _weighted(rng, DEFAULT_MIX if mix is None else mix)
    if kind == "niah":
        task = _weighted(rng, DEFAULT_NIAH_TASKS if niah_tasks is None else niah_tasks)
        nd = rng.randint(*mk_distractors) if task == "mk" else 0
        mnt = value_len(task) + 2  # " " + value + "."
        while nd > 0 and min_length(task, nd, mnt, bos=False) > max_len:
            nd -= 1
        lo = min_length(task, nd, mnt, bos=False)
        if lo <= max_len:
            length = rng.randint(lo, max_len)
            depth = rng.random()
            seed = TRAIN_SEED_BASE + rng.getrandbits(48)
            s = niah_prompt(task, length, depth, seed, distractors=nd,
                            max_new_tokens=mnt, bos=False)
            return s["prompt"] + " " + s["value"] + "."
        kind = "essay"
    if kind == "essay":
        return essay_document(rng, max_len)
    return arith_document(rng, max_len, arith_cot, mul)


# ------------------------------------------------------------------ CLI

def write_essays(path=ESSAYS_PATH):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(essay_text(ESSAYS_SEED, ESSAYS_WORDS))


def _demo():
    for task in TASKS:
        s = niah_prompt(task, 1024, 0.5, 0)
        print(f"--- {task} key={s['key']} value={s['value']} depth={s['depth_actual']:.3f}")
        print(s["prompt"])
    rng = random.Random(0)
    for _ in range(3):
        print("---", arith_problem(rng))
    print("---", sft_example(rng))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "demo"
    if cmd == "write-essays":
        write_essays()
        print(f"wrote {ESSAYS_PATH}")
    elif cmd == "arith-jsonl":
        import json
        n, path = int(sys.argv[2]), sys.argv[3]
        with open(path, "w") as f:
            for prompt, answer in arith_eval_pairs(n):
                f.write(json.dumps({"prompt": prompt, "answer": answer}) + "\n")
        print(f"wrote {n} problems to {path}")
    else:
        _demo()
