"""Write a Hugging Face tokenizer.json for a byte-level vocabulary.

Byte b -> id b (0..255), then <bos>=256, <eos>=257, <pad>=258 (vocab 259).
Any UTF-8 text encodes to exactly its bytes (no prefix space, no regex
splitting, no normalisation, no automatic special tokens) and decodes back.

Layout: a BPE model whose vocabulary is the 256 GPT-2 byte-to-unicode
characters (char of byte b has id b) with no merges, a ByteLevel
pre-tokenizer (add_prefix_space=false, use_regex=false), a ByteLevel decoder,
and the three special tokens as added tokens.  Only the standard library is
needed to write it.

Usage: python make_tokenizer.py OUT/tokenizer.json
"""

import json
import os
import sys

SPECIALS = [("<bos>", 256), ("<eos>", 257), ("<pad>", 258)]
VOCAB_SIZE = 259


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_dict():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    for tok, i in SPECIALS:
        vocab[tok] = i
    added = [
        {
            "id": i,
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for tok, i in SPECIALS
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": False,
            "use_regex": False,
        },
        "post_processor": None,
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": False,
            "use_regex": False,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [],
        },
    }


def write(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tokenizer_dict(), f, ensure_ascii=False, indent=2)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python make_tokenizer.py OUT/tokenizer.json")
    write(sys.argv[1])
    print(f"wrote {sys.argv[1]} (vocab {VOCAB_SIZE})")
