//! tokenizer.json through the `tokenizers` crate: the demo's byte-level
//! tokenizer, and a small BPE tokenizer of Qwen3's kind (byte-level
//! pre-tokenizer with Qwen's split regex, BPE merges, byte-level decoder)
//! built here, whose ids follow from its merges by hand.

use qklab::tokenizer::Tokenizer;

/// GPT-2's byte-to-character map: printable bytes stand for themselves,
/// the others shift past 255 in order.
fn bytes_to_unicode() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut shifted = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap()
            }
        })
        .collect()
}

/// A Qwen3-style tokenizer.json: id b for byte b, then merges
/// h+e, l+l, he+ll, hell+o, Ġ+hello (ids 256..260), then <|endoftext|>.
fn qwen_like_json() -> String {
    bpe_json(&[
        ("h", "e"),
        ("l", "l"),
        ("he", "ll"),
        ("hell", "o"),
        ("Ġ", "hello"),
    ])
}

/// A byte-level BPE tokenizer.json with `merges` (Ġ is the space) after
/// the 256 byte ids, then <|endoftext|>.
fn bpe_json(merges: &[(&str, &str)]) -> String {
    let map = bytes_to_unicode();
    let mut vocab = serde_json::Map::new();
    for (b, c) in map.iter().enumerate() {
        vocab.insert(c.to_string(), b.into());
    }
    let g = map[b' ' as usize].to_string();
    let merges = merges
        .iter()
        .map(|(a, b)| format!("{} {}", a.replace('Ġ', &g), b.replace('Ġ', &g)))
        .collect::<Vec<_>>();
    for (i, m) in merges.iter().enumerate() {
        vocab.insert(m.replace(' ', ""), (256 + i).into());
    }
    let special = 256 + merges.len();
    let byte_level = serde_json::json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false });
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{ "id": special, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                           "rstrip": false, "normalized": false, "special": true }],
        "normalizer": { "type": "NFC" },
        "pre_tokenizer": { "type": "Sequence", "pretokenizers": [
            { "type": "Split", "behavior": "Isolated", "invert": false, "pattern": { "Regex":
              "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" } },
            byte_level,
        ]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": { "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                   "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                   "vocab": vocab, "merges": merges },
    })
    .to_string()
}

#[test]
fn a_qwen_style_bpe_tokenizer_encodes_by_its_merges_and_round_trips() {
    let t = Tokenizer::from_json(&qwen_like_json(), None).unwrap();
    // "hello" merges to 259; " hello" is its own pre-token, Ġhello = 260.
    assert_eq!(t.encode("hello hello").unwrap(), vec![259, 260]);
    // No merge applies: one id per byte, UTF-8 bytes included.
    assert_eq!(t.encode("hi é").unwrap(), vec![104, 105, 32, 0xc3, 0xa9]);
    for text in [
        "hello hello",
        "hi é",
        "The magic number is 4967600.\nWhat is it?",
    ] {
        assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
    }
    // The special token is recognised whole and left out of decoded text.
    assert_eq!(t.encode("hi<|endoftext|>").unwrap(), vec![104, 105, 261]);
    assert_eq!(t.decode(&[104, 105, 261]).unwrap(), "hi");
}

#[test]
fn the_demo_tokenizer_is_bytes_after_bos() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/pre/tokenizer.json");
    let t = Tokenizer::from_json(&std::fs::read_to_string(path).unwrap(), Some(256)).unwrap();
    let text = "A special magic number: 4967600. é";
    let want: Vec<u32> = std::iter::once(256)
        .chain(text.bytes().map(u32::from))
        .collect();
    assert_eq!(t.encode(text).unwrap(), want);
    assert_eq!(t.decode(&want).unwrap(), text);
}

#[test]
fn a_broken_tokenizer_json_is_a_clear_error() {
    let e = Tokenizer::from_json("{\"model\": 3}", None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("tokenizer.json cannot be read:"), "{e}");
}

/// NIAH lengths are tokens of the checkpoint's tokenizer: with a BPE
/// tokenizer that merges common pairs, the byte budget grows until the
/// prompt plus its answer allowance is within 1% of the length asked for;
/// with the demo's byte tokenizer the prompt is the generator's, unchanged.
#[test]
fn niah_lengths_are_fitted_in_the_tokenizers_tokens() {
    let merges = [
        ("T", "h"),
        ("Th", "e"),
        ("Ġ", "t"),
        ("Ġt", "h"),
        ("Ġth", "e"),
        ("i", "s"),
        ("Ġ", "is"),
        ("e", "n"),
        ("r", "e"),
        ("Ġ", "a"),
        ("a", "n"),
        ("o", "n"),
        ("i", "n"),
        ("e", "r"),
        ("Ġ", "s"),
        ("Ġ", "w"),
        ("Ġ", "o"),
        ("Ġ", "b"),
        ("e", "s"),
        ("a", "t"),
    ];
    let bpe = Tokenizer::from_json(&bpe_json(&merges), None).unwrap();
    for task in [qklab::niah::Task::S1, qklab::niah::Task::S2] {
        let samples =
            qklab::prompts::niah_samples(task, &[1000, 3000], &[0.0, 0.5], 2, 5, None, &bpe)
                .unwrap();
        for s in &samples {
            let tokens = s.ids.len() + s.max_new;
            let miss = tokens.abs_diff(s.length as usize) as f64 / s.length as f64;
            let p = qklab::niah::niah_prompt(task, s.length, s.depth, s.seed, None).unwrap();
            eprintln!(
                "{:?} @{}: {tokens} tokens (miss {:.2}%), byte-fitted prompt would be {} tokens",
                task,
                s.length,
                100.0 * miss,
                bpe.encode(&p.prompt).unwrap().len() + s.max_new
            );
            assert!(
                miss <= 0.01,
                "{task:?} @{} depth {}: {tokens} tokens",
                s.length,
                s.depth
            );
            assert!(
                bpe.encode(&p.prompt).unwrap().len() + s.max_new < s.length as usize * 95 / 100,
                "the merges must matter for this test"
            );
        }
    }
    // The demo's tokenizer with its config's BOS (256), as a checkpoint opens it.
    let demo = Tokenizer::from_json(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/www/demo/pre/tokenizer.json"
        ))
        .unwrap(),
        Some(256),
    )
    .unwrap();
    for s in qklab::prompts::niah_samples(qklab::niah::Task::S2, &[1000], &[0.5], 2, 5, None, &demo)
        .unwrap()
    {
        let p = qklab::niah::niah_prompt(qklab::niah::Task::S2, s.length, s.depth, s.seed, None)
            .unwrap();
        assert_eq!(s.ids, demo.encode(&p.prompt).unwrap());
        assert_eq!(s.ids.len() + s.max_new, s.length as usize);
    }
}
