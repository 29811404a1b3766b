//! reference/essay_grammar.py: the seeded grammar whose sentences fill the
//! essay haystacks (s2, s3, mk). Every random draw happens in the order the
//! Python makes it (regex substitutions call back left to right, `a and b`
//! short-circuits after the draw in `a`), since one extra or missing draw
//! would change all text after it.

use super::pyrandom::PyRandom;
use super::tables::{
    FIRST, GENERAL, LAST, LEX, MOUNTAIN_NAMES, PLACE_HEAD, PLACE_TAIL, RIVER_NAMES, TOPICS,
};

/// Python's `str.isspace` on ASCII (what `\s`, `str.split()` and
/// `str.strip()` treat as whitespace), the one definition the splitting
/// helpers share.
pub(crate) fn py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f)
}

fn lex(name: &str) -> &'static [&'static str] {
    LEX.iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no LEX entry {name:?}"))
}

/// `plural(word)`: English plural of the regular nouns in LEX.
fn plural(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("man") {
        return format!("{stem}men");
    }
    if word.ends_with("ch") || word.ends_with("sh") || word.ends_with('s') || word.ends_with('x') {
        return format!("{word}es");
    }
    let b = word.as_bytes();
    if word.ends_with('y') && b.len() >= 2 && !b"aeiou".contains(&b[b.len() - 2]) {
        return format!("{}ies", &word[..word.len() - 1]);
    }
    format!("{word}s")
}

/// Python's `s[0].upper() + s[1:]` / `.lower()` on ASCII text.
fn with_first(s: &str, upper: bool) -> String {
    let mut out = s.to_string();
    if let Some(f) = out.get_mut(..1) {
        if upper {
            f.make_ascii_uppercase();
        } else {
            f.make_ascii_lowercase();
        }
    }
    out
}

/// `_VOWEL_ARTICLE.sub(...)`: `\b([Aa]) (?=[aeiouAEIOU])` -> "an"/"An".
fn vowel_article(s: &str) -> String {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if (c == b'a' || c == b'A')
            && (i == 0 || !word(b[i - 1]))
            && b.get(i + 1) == Some(&b' ')
            && b.get(i + 2).is_some_and(|v| b"aeiouAEIOU".contains(v))
        {
            out.push(c as char);
            out.push_str("n ");
            i += 2;
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

/// The paragraph's entities (`ent` in the Python).
struct Ent {
    city: String,
    city2: String,
    river: String,
    mountain: String,
    person: String,
}

impl Ent {
    fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "city" => &self.city,
            "city2" => &self.city2,
            "river" => &self.river,
            "mountain" => &self.mountain,
            "person" => &self.person,
            _ => return None,
        })
    }
}

/// `EssayGen(seed)`: an endless stream of essay sentences.
pub struct EssayGen {
    rng: PyRandom,
    pending: Vec<String>,
}

impl EssayGen {
    pub fn new(seed: u64) -> Self {
        EssayGen {
            rng: PyRandom::new(seed),
            pending: Vec::new(),
        }
    }

    fn place(&mut self) -> String {
        let h = self.rng.choice_str(PLACE_HEAD);
        let t = self.rng.choice_str(PLACE_TAIL);
        format!("{h}{t}")
    }

    fn person(&mut self) -> String {
        let f = self.rng.choice_str(FIRST);
        let l = self.rng.choice_str(LAST);
        format!("{f} {l}")
    }

    fn slot(&mut self, name: &str, ent: &Ent) -> String {
        if let Some(v) = ent.get(name) {
            return v.to_string();
        }
        let r = &mut self.rng;
        match name {
            "year" => r.randrange(1100, 1950).to_string(),
            "num" => r.randrange(3, 91).to_string(),
            "big" => (r.randrange(2, 91) * 100).to_string(),
            "pct" => (r.randrange(1, 13) * 5).to_string(),
            "trades" => plural(r.choice_str(lex("trade"))),
            "ships" => plural(r.choice_str(lex("ship"))),
            "trees" => plural(r.choice_str(lex("tree"))),
            _ => r.choice_str(lex(name)).to_string(),
        }
    }

    /// `_expand(template, ent)`.
    fn expand(&mut self, template: &str, ent: &Ent) -> String {
        // _ALT: `\[([^\[\]]*)\]` -> one alternative
        let mut s = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            match after.find(['[', ']']) {
                Some(close) if after.as_bytes()[close] == b']' => {
                    let alts: Vec<&str> = after[..close].split('|').collect();
                    s.push_str(&rest[..open]);
                    s.push_str(self.rng.choice_str(&alts));
                    rest = &after[close + 1..];
                }
                _ => {
                    s.push_str(&rest[..open + 1]);
                    rest = after;
                }
            }
        }
        s.push_str(rest);
        // _SLOT: `\{([a-z_0-9]+)\}`; a slot used twice gets two different words
        let mut filled = String::new();
        let mut used: Vec<String> = Vec::new();
        let mut rest = s.as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let len = after
                .bytes()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
                .count();
            if len > 0 && after.as_bytes().get(len) == Some(&b'}') {
                let name = &after[..len];
                let mut w = String::new();
                for _ in 0..8 {
                    w = self.slot(name, ent);
                    if !used.contains(&w) {
                        break;
                    }
                }
                used.push(w.clone());
                filled.push_str(&rest[..open]);
                filled.push_str(&w);
                rest = &after[len + 1..];
            } else {
                filled.push_str(&rest[..open + 1]);
                rest = after;
            }
        }
        filled.push_str(rest);
        // re.sub(r"  +", " ", s).replace(" ,", ",").replace(" .", ".")
        let mut s = String::with_capacity(filled.len());
        for c in filled.chars() {
            if !(c == ' ' && s.ends_with(' ')) {
                s.push(c);
            }
        }
        let s = s.replace(" ,", ",").replace(" .", ".");
        const OPENERS: [&str; 8] = [
            "In ", "By ", "When ", "During ", "On ", "Every ", "Before ", "Each ",
        ];
        let mut s = s;
        if self.rng.random() < 0.18 && !OPENERS.iter().any(|o| template.starts_with(o)) {
            let proper = template.starts_with("{city") || template.starts_with("{person");
            let first = if proper {
                s.clone()
            } else {
                with_first(&s, false)
            };
            s = format!("{}, {first}", self.rng.choice_str(lex("conn")));
        } else if self.rng.random() < 0.10 && s.ends_with('.') && !s.contains(',') {
            s = format!(
                "{}, {}.",
                &s[..s.len() - 1],
                self.rng.choice_str(lex("tail"))
            );
        }
        vowel_article(&with_first(&s, true))
    }

    /// `paragraph()`: 4..8 sentences on one topic about one place.
    pub fn paragraph(&mut self) -> Vec<String> {
        let (_, templates) = *self.rng.choice(TOPICS);
        let city = self.place();
        let mut city2 = self.place();
        while city2 == city {
            city2 = self.place();
        }
        let river = format!("the {}", self.rng.choice_str(RIVER_NAMES));
        let mountain = self.rng.choice_str(MOUNTAIN_NAMES).to_string();
        let person = self.person();
        let ent = Ent {
            city,
            city2,
            river,
            mountain,
            person,
        };
        // no template twice in a paragraph: draw without replacement
        let mut topical: Vec<&str> = templates.to_vec();
        let mut general: Vec<&str> = GENERAL.to_vec();
        let n = self.rng.randint(4, 8);
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let pick_general = self.rng.random() < 0.2 || topical.is_empty();
            let pool = if pick_general {
                &mut general
            } else {
                &mut topical
            };
            let t = pool.remove(self.rng.randrange(0, pool.len() as i64) as usize);
            out.push(self.expand(t, &ent));
        }
        out
    }

    /// `sentence()`: the next sentence of the stream.
    pub fn sentence(&mut self) -> String {
        if self.pending.is_empty() {
            self.pending = self.paragraph();
            self.pending.reverse();
        }
        self.pending.pop().expect("a paragraph has sentences")
    }
}

impl Iterator for EssayGen {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        Some(self.sentence())
    }
}

/// `split_sentences(text)`: strip, then split after each '.' at a run of
/// whitespace; empty pieces dropped.
pub fn split_sentences(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let (mut lo, mut hi) = (0, b.len());
    while lo < hi && py_space(b[lo]) {
        lo += 1;
    }
    while hi > lo && py_space(b[hi - 1]) {
        hi -= 1;
    }
    let t = &b[lo..hi];
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < t.len() {
        if py_space(t[i]) && i > 0 && t[i - 1] == b'.' {
            let mut j = i;
            while j < t.len() && py_space(t[j]) {
                j += 1;
            }
            out.push(&t[start..i]);
            start = j;
            i = j;
        } else {
            i += 1;
        }
    }
    out.push(&t[start..]);
    out.into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// `essay_text(seed, n_words)`: paragraphs separated by blank lines until
/// n_words words, with a final newline (how reference/assets/essays.txt was
/// written: seed 0, 6000 words).
pub fn essay_text(seed: u64, n_words: usize) -> String {
    let mut gen = EssayGen::new(seed);
    let (mut paras, mut words) = (Vec::new(), 0);
    while words < n_words {
        let p = gen.paragraph().join(" ");
        words += p.split(py_space_char).filter(|w| !w.is_empty()).count();
        paras.push(p);
    }
    paras.join("\n\n") + "\n"
}

fn py_space_char(c: char) -> bool {
    c.is_ascii() && py_space(c as u8)
}
