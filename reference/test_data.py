"""Tests of reference/data.py: `python3 -m pytest reference/test_data.py -q`.

If test_essays_file_is_the_generator_output fails after a deliberate change to
the grammar, regenerate the asset: `python3 reference/data.py write-essays`.
"""

import os
import random
import re
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data  # noqa: E402
import essay_grammar  # noqa: E402

import pytest  # noqa: E402

LENGTHS = [512, 600, 768, 1000, 1024, 1536, 2048, 3000, 4096]
DEPTHS = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]


def lengths_for(task, nd=None):
    lo = data.min_length(task, nd)
    return [n for n in [256] + LENGTHS if n >= lo]


def haystack_of(s):
    """(start, end) of the haystack in the prompt, found from the templates."""
    head = data.intro(s["task"]) + "\n"
    assert s["prompt"].startswith(head)
    tail = "\n" + data.question(s["task"], s["key"]) + data.answer_prefix(s["task"], s["key"])
    assert s["prompt"].endswith(tail)
    return len(head), len(s["prompt"]) - len(tail)


# ------------------------------------------------------------ templates

def test_templates_exact():
    s = data.niah_prompt("s2", 1024, 0.5, 3)
    k, v = s["key"], s["value"]
    p = s["prompt"]
    assert p.startswith(
        "A special magic number is hidden within the following text. Make sure to "
        "memorize it. I will quiz you about the number afterwards.\n")
    assert f"One of the special magic numbers for {k} is: {v}." in p
    assert p.endswith(
        f"\nWhat is the special magic number for {k} mentioned in the provided text?"
        f" The special magic number for {k} mentioned in the provided text is")
    u = data.niah_prompt("s3", 1024, 0.5, 3)
    k, v = u["key"], u["value"]
    assert u["prompt"].startswith(
        "A special magic uuid is hidden within the following text. Make sure to "
        "memorize it. I will quiz you about the uuid afterwards.\n")
    assert f"One of the special magic uuids for {k} is: {v}." in u["prompt"]
    assert u["prompt"].endswith(
        f"\nWhat is the special magic uuid for {k} mentioned in the provided text?"
        f" The special magic uuid for {k} mentioned in the provided text is")
    assert uuid.UUID(v).version == 4 and str(uuid.UUID(v)) == v


def test_s1_haystack_is_noise_lines():
    s = data.niah_prompt("s1", 2048, 0.5, 1)
    a, b = haystack_of(s)
    lines = s["prompt"][a:b].split("\n")
    noise = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
    assert data.NOISE == noise
    assert s["needle"] in lines
    body = [ln for ln in lines if ln != s["needle"]]
    assert all(ln == noise for ln in body[:-1])
    assert noise.startswith(body[-1].rstrip(" "))  # the last line: padding


def test_keys_and_values():
    assert len(data.ADJECTIVES) == len(set(data.ADJECTIVES)) >= 200
    assert len(data.NOUNS) == len(set(data.NOUNS)) >= 200
    for w in data.ADJECTIVES + data.NOUNS:
        assert re.fullmatch(r"[a-z]+", w), w
    for seed in range(50):
        s = data.niah_prompt("s2", 1024, 0.5, seed)
        adj, noun = s["key"].split("-")
        assert adj in data.ADJECTIVES and noun in data.NOUNS
        assert re.fullmatch(r"[1-9]\d{6}", s["value"])


# ------------------------------------------------------------ determinism

def test_determinism():
    for task in data.TASKS:
        a = data.niah_prompt(task, 2048, 0.3, 7)
        b = data.niah_prompt(task, 2048, 0.3, 7)
        assert a == b
        assert a["prompt"] != data.niah_prompt(task, 2048, 0.3, 8)["prompt"]
    docs = [[data.lm_document(random.Random(5), 1024) for _ in range(3)] for _ in range(2)]
    assert docs[0] == docs[1]
    assert data.arith_test_set(100, seed=9) == data.arith_test_set(100, seed=9)


def test_essays_file_is_the_generator_output():
    with open(data.ESSAYS_PATH, encoding="utf-8") as f:
        text = f.read()
    assert text == essay_grammar.essay_text(data.ESSAYS_SEED, data.ESSAYS_WORDS), \
        "regenerate with: python3 reference/data.py write-essays"
    assert len(text.split()) >= 5000
    assert text.isascii()
    sents = essay_grammar.split_sentences(text)
    assert all(s.endswith(".") and s.count(".") == 1 for s in sents)
    assert max(len(n) for n in re.findall(r"\d+", text)) <= 4


def test_same_seed_same_sample_across_depths_and_lengths():
    a = data.niah_prompt("s2", 2048, 0.0, 4)
    b = data.niah_prompt("s2", 4096, 1.0, 4)
    assert (a["key"], a["value"]) == (b["key"], b["value"])
    ha = a["prompt"][slice(*haystack_of(a))].replace(a["needle"] + " ", "")
    hb = b["prompt"][slice(*haystack_of(b))]
    first = ha.split(". ")[:10]
    assert hb.startswith(". ".join(first))


# ------------------------------------------------------------ lengths, depth, needles

@pytest.mark.parametrize("task", data.TASKS)
def test_lengths_exact(task):
    for length in lengths_for(task):
        for depth in (0.0, 0.5, 1.0):
            for seed in range(3):
                s = data.niah_prompt(task, length, depth, seed)
                n = 1 + len(s["prompt"].encode()) + len(s["value"]) + 8
                assert n == s["n_tokens"] == length
                assert abs(n - length) <= 0.01 * length
    # explicit bos / max_new_tokens
    s = data.niah_prompt(task, 3000, 0.5, 0, max_new_tokens=128, bos=False)
    assert len(s["prompt"].encode()) + 128 == 3000


def test_too_short_raises_and_min_length_is_tight():
    for task in data.TASKS:
        lo = data.min_length(task)
        with pytest.raises(ValueError):
            data.niah_prompt(task, lo // 2, 0.5, 0)
        for seed in range(20):
            data.niah_prompt(task, lo, 0.5, seed)
    assert data.min_length("s1") > 256  # the spec templates alone exceed 256 bytes


@pytest.mark.parametrize("task", data.TASKS)
def test_depth(task):
    for length in lengths_for(task):
        for depth in DEPTHS:
            s = data.niah_prompt(task, length, depth, length + int(depth * 10))
            a, b = haystack_of(s)
            start, end = s["needle_span"]
            assert s["prompt"][start:end] == s["needle"]
            rel = (start - a) / ((b - a) - len(s["needle"]))
            assert abs(rel - s["depth_actual"]) < 1e-9
            # within 5%, or within one haystack unit of the requested depth
            units = s["prompt"][a:b].split("\n" if task == "s1" else ". ")
            unit = max(len(u) for u in units) + 2
            tol = max(0.05, unit / (b - a))
            assert abs(rel - depth) <= tol, (task, length, depth, rel)
    assert data.niah_prompt(task, 4096, 0.0, 1)["depth_actual"] == 0.0
    assert data.niah_prompt(task, 4096, 1.0, 1)["depth_actual"] == 1.0


@pytest.mark.parametrize("task", data.TASKS)
def test_value_once(task):
    for seed in range(10):
        for length in (lengths_for(task)[0], 4096):
            s = data.niah_prompt(task, length, seed / 9, seed)
            assert s["prompt"].count(s["value"]) == 1
            assert s["prompt"].count(s["needle"]) == 1
            assert data.score(" " + s["value"].upper() + ".", s["value"]) == 1
            assert data.score(" 123.", s["value"]) == 0


def test_mk_distractors():
    for nd in (1, 3, 8):
        for seed in range(5):
            s = data.niah_prompt("mk", 4096, 0.4, seed, distractors=nd)
            adj = s["key"].split("-")[0]
            found = re.findall(r"One of the special magic numbers for ([a-z]+)-([a-z]+) is: (\d+)\.",
                               s["prompt"])
            assert len(found) == nd + 1
            assert all(a == adj for a, _, _ in found)
            assert len({n for _, n, _ in found}) == nd + 1
            assert len({v for _, _, v in found}) == nd + 1
            assert s["prompt"].count(s["value"]) == 1
            assert [f"{a}-{n}" for a, n, _ in found].count(s["key"]) == 1
            assert sorted(s["distractors"]) == sorted((f"{a}-{n}", v) for a, n, v in found
                                                      if f"{a}-{n}" != s["key"])
    assert len(data.niah_prompt("mk", 2048, 0.5, 0)["distractors"]) == 8


def test_file_source():
    s = data.niah_prompt("s2", 2048, 0.5, 2, source="file")
    sents = set(data.essay_file_sentences())
    body = s["prompt"][slice(*haystack_of(s))].replace(s["needle"], "")
    whole = [x for x in essay_grammar.split_sentences(body)]
    assert sum(x in sents for x in whole) >= len(whole) - 2  # all but the padding


# ------------------------------------------------------------ arithmetic

def check_trace(q, cot, final, max_value=20):
    expr = re.fullmatch(r"Q: ([0-9+\-x]+)=\?", q).group(1)
    nums = re.findall(r"\d", expr)
    assert 2 <= len(nums) <= 4 and all(len(n) == 1 for n in re.findall(r"\d+", expr))
    assert eval(expr.replace("x", "*")) == int(final)  # noqa: S307 (digits and + - * only)
    m = re.fullmatch(r"A: ((?:\d+[+\-x]\d=\d+\. )+)So the answer is (\d+)\.", cot)
    assert m, cot
    assert m.group(2) == final
    steps = re.findall(r"(\d+)([+\-x])(\d)=(\d+)\.", m.group(1))
    assert len(steps) == len(nums) - 1
    cur = int(nums[0])
    for (a, op, b, r), nb in zip(steps, nums[1:]):
        assert int(a) == cur and b == nb
        want = int(a) + int(b) if op == "+" else int(a) - int(b) if op == "-" else int(a) * int(b)
        assert int(r) == want and 0 <= want <= max_value
        cur = want
    assert cur == int(final)


def test_arith_traces_correct():
    rng = random.Random(0)
    for mul in (False, True):
        for _ in range(2000):
            check_trace(*data.arith_problem(rng, mul=mul))
    for p in data.arith_test_set(500):
        check_trace(*p)


def test_arith_example_format():
    assert data.arith_score("A: 7+5=12. 12-3=9. So the answer is 9.", "9") == 1
    assert data.arith_score(" So the answer is 19.", "9") == 0
    assert data.arith_score("no answer 9", "9") == 0
    assert data.arith_score("So the answer is 9. So the answer is 4.", 9) == 1
    assert data.arith_direct("9") == "A: So the answer is 9."
    assert data.arith_prompt("Q: 7+5-3=?") == "Q: 7+5-3=?\nA:"


def test_arith_train_test_disjoint():
    test = data.arith_test_set(500)
    assert len(test) == len({q for q, _, _ in test}) == 500
    test_q = {q for q, _, _ in test}
    assert all(data.arith_split(q) == "test" for q in test_q)
    rng = random.Random(1)
    train_q = {data.arith_problem(rng)[0] for _ in range(20000)}
    assert not (train_q & test_q)
    rng = random.Random(2)
    sft_q = {data.sft_example(rng)[0].split("\n")[0] for _ in range(5000)}
    assert not (sft_q & test_q)
    doc_q = set()
    rng = random.Random(3)
    for _ in range(50):
        doc_q |= set(re.findall(r"Q: [^\n]*", data.arith_document(rng, 2048)))
    assert doc_q and not (doc_q & test_q)


def test_arith_eval_pairs():
    pairs = data.arith_eval_pairs(500)
    assert [p[:-len("\nA:")] for p, _ in pairs] == [q for q, _, _ in data.arith_test_set(500)]
    for p, t in pairs:
        final = re.search(r"So the answer is (\d+)\.$", t).group(1)
        check_trace(p[:-len("\nA:")], "A:" + t, final)


def test_sft_example():
    rng = random.Random(4)
    for _ in range(500):
        p, t = data.sft_example(rng)
        assert len((p + t).encode()) <= 512
        assert p.startswith("Q: ") and p.endswith("=?\nA:")
        q = p[:-len("\nA:")]
        final = re.search(r"So the answer is (\d+)\.$", t).group(1)
        check_trace(q, "A:" + t, final)
        assert data.arith_score(t, final) == 1


# ------------------------------------------------------------ LM documents

def test_lm_documents():
    rng = random.Random(11)
    kinds = {"niah": 0, "essay": 0, "arith": 0}
    for _ in range(300):
        max_len = rng.choice([512, 1024, 2048])
        doc = data.lm_document(rng, max_len)
        assert 0 < len(doc.encode()) <= max_len
        assert doc.isascii()
        if doc.startswith("A special magic"):
            kinds["niah"] += 1
            m = re.search(r"mentioned in the provided text is (\S+)\.$", doc)
            assert m, doc[-200:]
            assert f"is: {m.group(1)}." in doc  # the answer is the target needle's value
            key = re.search(r"What is the special magic \w+ for (\S+) mentioned", doc).group(1)
            assert f"for {key} is: {m.group(1)}." in doc
        elif doc.startswith("Q: "):
            kinds["arith"] += 1
            answers = re.findall(r"^A: .*$", doc, re.M)
            assert answers and all(re.fullmatch(r"A: So the answer is \d+\.", x) for x in answers)
        else:
            kinds["essay"] += 1
            assert doc.rstrip().endswith(".")
    assert kinds["niah"] > 100 and kinds["essay"] > 70 and 10 < kinds["arith"] < 70
    # proportions are parameters
    only = [data.lm_document(rng, 1024, mix={"arith": 1.0}, arith_cot=1.0) for _ in range(5)]
    assert all(d.startswith("Q: ") and re.search(r"\d=\d+\. ", d) for d in only)
    short = [data.lm_document(rng, 300, mix={"niah": 1.0}) for _ in range(5)]
    assert all(len(d) <= 300 for d in short)  # falls back to essay text when too short
