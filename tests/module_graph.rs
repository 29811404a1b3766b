//! The crate's module graph has no cycles: every file of `src/` is a node,
//! and a file depends on every module its paths name (`use crate::…`,
//! `super::…`, `self::…`, a child module, or a name a `use` brought in).
//! A cycle means two modules cannot be read, tested or changed apart, so
//! the test names each one it finds. The binary's modules (main.rs and
//! cli/) form a crate of their own; they reach the library through
//! `qklab::`, which cannot point back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside one crate: `[]` is the crate root.
type ModPath = Vec<String>;

struct Crate {
    /// File of each module.
    files: BTreeMap<ModPath, PathBuf>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file of `src/` defines, and whether it is the binary's.
fn module_of(src: &Path, file: &Path) -> (bool, ModPath) {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs").to_string();
    if !matches!(stem.as_str(), "mod" | "lib" | "main") || !parts.is_empty() && stem != "mod" {
        parts.push(stem.clone());
    }
    let bin = stem == "main" && rel.components().count() == 1
        || parts.first().is_some_and(|p| p == "cli");
    (bin, parts)
}

/// The text with comments, strings and char literals blanked out, so that
/// only code is searched for paths.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !b
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string r"…" or r#"…"#, if that is what follows.
            let mut j = i + 1;
            while b.get(j) == Some(&'#') {
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            j += 1;
            while j < b.len()
                && !(b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')))
            {
                j += 1;
            }
            i = j + 1 + hashes;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (b.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('x' or '\n', '\u{..}'); otherwise a lifetime.
            i += 1;
            while i < b.len() && b[i] != '\'' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{self, d as e}}`) into (path, alias) pairs.
fn expand_use(tree: &str, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    // Split at top-level commas.
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    if items.len() > 1 {
        for item in items {
            expand_use(item, prefix, out);
        }
        return;
    }
    let item = items[0].trim();
    if let Some(open) = item.find('{') {
        let head: Vec<String> = item[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let inner = &item[open + 1..item.rfind('}').unwrap()];
        let mut p = prefix.to_vec();
        p.extend(head);
        expand_use(inner, &p, out);
        return;
    }
    let (path, alias) = match item.split_once(" as ") {
        Some((p, a)) => (p.trim(), Some(a.trim().to_string())),
        None => (item, None),
    };
    let mut segs = prefix.to_vec();
    segs.extend(
        path.split("::")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    );
    if segs.last().is_some_and(|s| s == "self") {
        segs.pop();
    }
    if segs.last().is_some_and(|s| s == "*") {
        segs.pop();
        out.push((segs, String::new()));
        return;
    }
    let alias = alias.unwrap_or_else(|| segs.last().cloned().unwrap_or_default());
    out.push((segs, alias));
}

/// Inline `mod name { … }` blocks belong to their file's module: their
/// `super::` is that module itself.
fn flatten_inline_mods(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(at) = out[from..].find("mod ").map(|i| i + from) {
        from = at + 4;
        if out[..at].chars().last().is_some_and(is_ident) {
            continue;
        }
        let rest = &out[from..];
        let name_len = rest.chars().take_while(|c| is_ident(*c)).count();
        let after = rest[name_len..].trim_start();
        if name_len == 0 || !after.starts_with('{') {
            continue;
        }
        let open = from + rest.len() - after.len();
        let mut depth = 0;
        let mut close = out.len();
        for (i, c) in out[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = out[open..close].replace("super::", "self::");
        out.replace_range(open..close, &inner);
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `a::b::c` path in `code` (at least two segments), as segments.
fn paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':') {
            let mut segs = Vec::new();
            let mut j = i;
            loop {
                let s = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segs.push(chars[s..j].iter().collect::<String>());
                let mut k = j;
                while k < chars.len() && chars[k] == ' ' {
                    k += 1;
                }
                if chars.get(k) == Some(&':') && chars.get(k + 1) == Some(&':') {
                    k += 2;
                    while k < chars.len() && chars[k].is_whitespace() {
                        k += 1;
                    }
                    if k < chars.len() && is_ident(chars[k]) {
                        j = k;
                        continue;
                    }
                }
                break;
            }
            if segs.len() >= 2 {
                out.push(segs);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

impl Crate {
    /// The longest module that `path` (absolute, from the crate root) lies in.
    fn resolve(&self, path: &[String]) -> ModPath {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| self.files.contains_key(m))
            .unwrap_or_default()
    }

    /// An absolute path for `segs` as written in module `m`, if it is a
    /// path into this crate.
    fn absolute(
        &self,
        m: &ModPath,
        segs: &[String],
        aliases: &BTreeMap<String, Vec<String>>,
        children: &BTreeSet<String>,
    ) -> Option<Vec<String>> {
        let first = segs.first()?;
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => m.clone(),
            "super" => {
                let mut p = m.clone();
                let mut rest = segs;
                while rest.first().is_some_and(|s| s == "super") {
                    p.pop();
                    rest = &rest[1..];
                }
                p.extend(rest.iter().cloned());
                return Some(p);
            }
            name if children.contains(name) => {
                let mut p = m.clone();
                p.push(name.to_string());
                p
            }
            name => {
                let mut p = aliases.get(name)?.clone();
                p.extend(segs[1..].iter().cloned());
                return Some(p);
            }
        };
        base.extend(segs[1..].iter().cloned());
        Some(base)
    }

    /// Module -> modules it depends on.
    fn edges(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let mut graph = BTreeMap::new();
        for (m, file) in &self.files {
            let code = flatten_inline_mods(&code_only(&std::fs::read_to_string(file).unwrap()));
            let children: BTreeSet<String> = code
                .split(';')
                .filter_map(|s| {
                    let s = s.trim();
                    let decl = s.rsplit(['\n', '}', ']']).next()?.trim();
                    let decl = decl
                        .strip_prefix("pub ")
                        .or_else(|| decl.strip_prefix("pub(crate) "))
                        .unwrap_or(decl);
                    decl.strip_prefix("mod ").map(|n| n.trim().to_string())
                })
                .collect();
            // Use statements: absolute targets and the aliases they bind.
            let mut aliases = BTreeMap::new();
            let mut targets = Vec::new();
            let mut rest = code.as_str();
            while let Some(at) = rest.find("use ") {
                let before = rest[..at].chars().last();
                rest = &rest[at + 4..];
                if before.is_some_and(is_ident) {
                    continue;
                }
                let Some(end) = rest.find(';') else { break };
                let mut items = Vec::new();
                expand_use(&rest[..end], &[], &mut items);
                for (segs, alias) in items {
                    if let Some(abs) = self.absolute(m, &segs, &BTreeMap::new(), &children) {
                        if !alias.is_empty() {
                            aliases.insert(alias, abs.clone());
                        }
                        targets.push(abs);
                    }
                }
                rest = &rest[end..];
            }
            for segs in paths(&code) {
                if let Some(abs) = self.absolute(m, &segs, &aliases, &children) {
                    targets.push(abs);
                }
            }
            let deps: BTreeSet<ModPath> = targets
                .iter()
                .map(|t| self.resolve(t))
                .filter(|d| d != m)
                .collect();
            graph.insert(m.clone(), deps);
        }
        graph
    }
}

/// Every cycle's modules (strongly connected components of two or more).
fn cycles(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    // Tarjan's algorithm.
    struct S<'g> {
        g: &'g BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'g ModPath, usize>,
        low: BTreeMap<&'g ModPath, usize>,
        stack: Vec<&'g ModPath>,
        on: BTreeSet<&'g ModPath>,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'g>(s: &mut S<'g>, v: &'g ModPath) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let Some((w, _)) = s.g.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = S {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn name(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn crates() -> [Crate; 2] {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let (mut lib, mut bin) = (BTreeMap::new(), BTreeMap::new());
    for f in files {
        let (is_bin, m) = module_of(&src, &f);
        if is_bin { &mut bin } else { &mut lib }.insert(m, f);
    }
    [Crate { files: lib }, Crate { files: bin }]
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let mut found = Vec::new();
    for krate in crates() {
        let graph = krate.edges();
        for comp in cycles(&graph) {
            let members: BTreeSet<&ModPath> = comp.iter().collect();
            let detail: Vec<String> = comp
                .iter()
                .map(|m| {
                    let deps: Vec<String> = graph[m]
                        .iter()
                        .filter(|d| members.contains(d))
                        .map(name)
                        .collect();
                    format!("{} -> {}", name(m), deps.join(", "))
                })
                .collect();
            found.push(detail.join("; "));
        }
    }
    assert!(found.is_empty(), "import cycles:\n  {}", found.join("\n  "));
}

/// The checker itself finds a cycle it is shown, and none in a chain.
#[test]
fn the_checker_sees_a_cycle() {
    let m = |s: &str| -> ModPath { s.split("::").map(String::from).collect() };
    let mut g = BTreeMap::new();
    g.insert(m("a"), BTreeSet::from([m("b")]));
    g.insert(m("b"), BTreeSet::from([m("c")]));
    g.insert(m("c"), BTreeSet::from([m("a")]));
    g.insert(m("d"), BTreeSet::from([m("a")]));
    let found = cycles(&g);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([m("a"), m("b"), m("c")])
    );
    g.insert(m("c"), BTreeSet::new());
    assert!(cycles(&g).is_empty());
    let mut items = Vec::new();
    expand_use(
        "super::{add, share::{self, field as f}, x::*}",
        &[],
        &mut items,
    );
    let got: Vec<(String, String)> = items.into_iter().map(|(p, a)| (p.join("::"), a)).collect();
    assert_eq!(
        got,
        [
            ("super::add", "add"),
            ("super::share", "share"),
            ("super::share::field", "f"),
            ("super::x", "")
        ]
        .map(|(p, a)| (p.to_string(), a.to_string()))
    );
    assert_eq!(
        code_only("a // b::c\n\"x::y\" r#\"p::q\"# 'a' d::e"),
        "a \n\"\" \"\" ' ' d::e"
    );
}
