//! The layer order of `ARCHITECTURE.md`, enforced: every `crate::`, `super::` and child
//! path in `src/` is resolved to the module it names, and the test fails on an import
//! that points up the layers, on two modules of one layer that import each other, and on
//! a circle between the files of one module. Test code (`#[cfg(test)]` and `*tests.rs`)
//! may look anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules, lowest layer first. A module may import only modules of a lower
/// rank; modules of one rank are independent of each other.
const LAYERS: &[(&str, u32)] = &[
    ("base", 0),
    ("config", 1),
    ("mqtt", 2),
    ("stats", 2),
    ("store", 3),
    ("source", 4),
    ("detect", 4),
    ("alert", 5),
    ("forward", 5),
    ("http", 6),
    ("agent", 7),
    ("demo", 8),
    // The binary's own modules (`main.rs` and the files it declares).
    ("cli", 9),
];

/// File-level circles that are allowed, with the reason (none today).
const ALLOWED_CIRCLES: &[(&str, &str, &str)] = &[];

/// One source file: its module path (`store::query`; `cli::history` for the binary's
/// files) and its code with comments and test code removed.
struct File {
    module: Vec<String>,
    code: String,
    is_mod_root: bool,
}

fn strip(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_str = !in_str;
                out.push(' ');
            }
            '\\' if in_str => {
                chars.next();
            }
            '/' if !in_str && chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            _ if in_str => {}
            c => out.push(c),
        }
    }
    out
}

fn read_tree(src: &Path) -> Vec<File> {
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap_or_default();
    let cli: BTreeSet<String> = declared_children(&strip(&main)).into_iter().collect();
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".rs") || name == "tests.rs" || name.ends_with("_tests.rs") {
                continue;
            }
            let rel: Vec<String> = path
                .strip_prefix(src)
                .unwrap()
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            let is_mod_root = matches!(rel.last().map(String::as_str), Some("mod"));
            let mut module: Vec<String> = rel.into_iter().filter(|p| p != "mod").collect();
            if module == ["lib"] {
                continue;
            }
            if module == ["main"] || (module.len() == 1 && cli.contains(&module[0])) {
                module.insert(0, "cli".into());
                if module.last().map(String::as_str) == Some("main") {
                    module.pop();
                }
            }
            let code = strip(&std::fs::read_to_string(&path).unwrap());
            let is_mod_root = is_mod_root || module == ["cli"] || has_children(&path);
            files.push(File {
                module,
                code,
                is_mod_root,
            });
        }
    }
    files
}

/// `foo.rs` with a `foo/` folder beside it is a module root too.
fn has_children(path: &Path) -> bool {
    path.with_extension("").is_dir()
}

fn declared_children(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let t = line.trim();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if let Some(rest) = t.strip_prefix("mod ") {
            if let Some(name) = rest.strip_suffix(';') {
                out.push(name.trim().to_string());
            }
        }
    }
    out
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path the code names that starts with `crate`, `super`, `self` or `forewarn`
/// (the binary's name for the library), with `use` groups expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if !ident_char(bytes[i]) || (i > 0 && (ident_char(bytes[i - 1]) || bytes[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && ident_char(bytes[i]) {
            i += 1;
        }
        let word: String = bytes[start..i].iter().collect();
        if !matches!(word.as_str(), "crate" | "super" | "self" | "forewarn") {
            continue;
        }
        let (tail, end) = path_tail(&bytes, i);
        for mut t in tail {
            t.insert(0, word.clone());
            out.push(t);
        }
        i = end.max(i);
    }
    out
}

/// The continuation of a path after its first segment: `::a::b`, or `::{a, b::c}`.
fn path_tail(s: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix: Vec<String> = Vec::new();
    loop {
        if i + 1 < s.len() && s[i] == ':' && s[i + 1] == ':' {
            i += 2;
            while i < s.len() && s[i].is_whitespace() {
                i += 1;
            }
            if i < s.len() && s[i] == '{' {
                let mut depth = 0;
                let start = i + 1;
                let mut j = i;
                while j < s.len() {
                    match s[j] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let inner: String = s[start..j.min(s.len())].iter().collect();
                let mut out = Vec::new();
                for part in split_top(&inner) {
                    let chars: Vec<char> = format!("x::{}", part.trim()).chars().collect();
                    let (tails, _) = path_tail(&chars, 1);
                    for t in tails {
                        let mut p = prefix.clone();
                        p.extend(t);
                        out.push(p);
                    }
                }
                return (out, j + 1);
            }
            let start = i;
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            if i == start {
                break;
            }
            prefix.push(s[start..i].iter().collect());
        } else {
            break;
        }
    }
    (vec![prefix], i)
}

fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

struct Tree {
    files: Vec<File>,
    modules: BTreeSet<Vec<String>>,
    /// `pub use child::Name` of a module root: `(module, Name)` → the child it comes from.
    reexports: BTreeMap<(Vec<String>, String), Vec<String>>,
}

impl Tree {
    fn new(files: Vec<File>) -> Self {
        let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
        let mut reexports = BTreeMap::new();
        for f in files.iter().filter(|f| f.is_mod_root) {
            for stmt in f.code.split(';') {
                let t = stmt.trim();
                let Some(rest) = t.strip_prefix("pub use ").or_else(|| t.strip_prefix("pub(crate) use ")) else {
                    continue;
                };
                let rest = rest.trim_start_matches("self::");
                let chars: Vec<char> = format!("x::{rest}").chars().collect();
                for p in path_tail(&chars, 1).0 {
                    let Some(child) = p.first() else { continue };
                    let mut m = f.module.clone();
                    m.push(child.clone());
                    if modules.contains(&m) {
                        if let Some(name) = p.last() {
                            let name = name.split(" as ").last().unwrap_or(name).trim().to_string();
                            reexports.insert((f.module.clone(), name), m);
                        }
                    }
                }
            }
        }
        Tree {
            files,
            modules,
            reexports,
        }
    }

    /// The module a path names: its longest prefix that is a module, then through a
    /// re-export of that module's root where the next segment is one.
    fn resolve(&self, file: &File, path: &[String]) -> Option<Vec<String>> {
        let mut base: Vec<String> = match path.first()?.as_str() {
            "crate" | "forewarn" => Vec::new(),
            "self" => {
                if file.is_mod_root {
                    file.module.clone()
                } else {
                    file.module[..file.module.len() - 1].to_vec()
                }
            }
            "super" => {
                let mut m = file.module.clone();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    m.pop();
                    rest = &rest[1..];
                }
                if file.module.first().map(String::as_str) == Some("cli") && m.is_empty() {
                    m = vec!["cli".into()];
                }
                return self.descend(m, rest);
            }
            _ => return None,
        };
        if path[0] == "crate" && file.module.first().map(String::as_str) == Some("cli") {
            base = vec!["cli".into()];
        }
        self.descend(base, &path[1..])
    }

    fn descend(&self, mut m: Vec<String>, rest: &[String]) -> Option<Vec<String>> {
        for seg in rest {
            let mut next = m.clone();
            next.push(seg.clone());
            if self.modules.contains(&next) {
                m = next;
            } else {
                if let Some(child) = self.reexports.get(&(m.clone(), seg.clone())) {
                    m = child.clone();
                }
                break;
            }
        }
        (!m.is_empty()).then_some(m)
    }

    /// Every (from module, to module) the code names, children named by bare `child::`
    /// paths included.
    fn edges(&self) -> BTreeSet<(Vec<String>, Vec<String>)> {
        let mut out = BTreeSet::new();
        for f in &self.files {
            for p in paths(&f.code) {
                if let Some(to) = self.resolve(f, &p) {
                    if to != f.module {
                        out.insert((f.module.clone(), to));
                    }
                }
            }
            if f.is_mod_root {
                for child in declared_children(&f.code) {
                    let needle = format!("{child}::");
                    if f.code.contains(&needle) {
                        let mut to = f.module.clone();
                        to.push(child);
                        out.insert((f.module.clone(), to));
                    }
                }
            }
        }
        out
    }
}

fn rank(top: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == top).map(|(_, r)| *r)
}

/// Every violation of the layer order in the tree under `src`.
fn violations(src: &Path) -> Vec<String> {
    let tree = Tree::new(read_tree(src));
    let edges = tree.edges();
    let mut problems = Vec::new();
    for f in &tree.files {
        if rank(&f.module[0]).is_none() {
            problems.push(format!("{}: top-level module missing from LAYERS", f.module[0]));
        }
    }
    for (from, to) in &edges {
        let (a, b) = (&from[0], &to[0]);
        if a == b {
            continue;
        }
        if let (Some(ra), Some(rb)) = (rank(a), rank(b)) {
            if rb >= ra {
                problems.push(format!(
                    "{} imports {}: `{a}` (layer {ra}) may not import `{b}` (layer {rb})",
                    from.join("::"),
                    to.join("::")
                ));
            }
        }
    }
    problems.extend(sibling_circles(&edges));
    problems.sort();
    problems.dedup();
    problems
}

/// Circles between the children of one module (a child stands for its whole subtree).
fn sibling_circles(edges: &BTreeSet<(Vec<String>, Vec<String>)>) -> Vec<String> {
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, to) in edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common >= from.len() || common >= to.len() {
            continue; // a module and its own descendant or ancestor
        }
        let parent = from[..common].to_vec();
        graphs
            .entry(parent)
            .or_default()
            .entry(from[common].clone())
            .or_default()
            .insert(to[common].clone());
    }
    let mut out = Vec::new();
    for (parent, g) in graphs {
        for (a, targets) in &g {
            for b in targets {
                if a < b && reaches(&g, b, a) && !allowed(&parent, a, b) {
                    let p = if parent.is_empty() {
                        "crate".into()
                    } else {
                        parent.join("::")
                    };
                    out.push(format!(
                        "circle in {p}: {a} and {b} import each other (directly or through others)"
                    ));
                }
            }
        }
    }
    out
}

fn reaches(g: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            stack.extend(g.get(&n).into_iter().flatten().cloned());
        }
    }
    false
}

fn allowed(parent: &[String], a: &str, b: &str) -> bool {
    let p = parent.join("::");
    ALLOWED_CIRCLES
        .iter()
        .any(|(m, x, y)| *m == p && ((a == *x && b == *y) || (a == *y && b == *x)))
}

#[test]
fn imports_follow_the_layer_order() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = violations(&src);
    assert!(
        problems.is_empty(),
        "imports against ARCHITECTURE.md's layers:\n{}",
        problems.join("\n")
    );
}

/// The checker itself finds an upward import, a circle between two engines of one layer
/// and a circle between the files of one module, through `use` groups, `super::` and a
/// parent's re-export.
#[test]
fn the_checker_sees_upward_imports_and_circles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("main.rs", "mod history;\nuse forewarn::agent::run;\n");
    write("history.rs", "use forewarn::store::Store;\n");
    write(
        "lib.rs",
        "pub mod base; pub mod config; pub mod store; pub mod source; pub mod detect; pub mod agent;\n",
    );
    write("base/mod.rs", "pub mod time;\n");
    write("base/time.rs", "pub fn now() {}\n");
    write("config.rs", "use crate::{base::time::now, store::Tier};\n");
    write("store/mod.rs", "mod query;\nmod rollup;\npub use rollup::Tier;\n");
    write(
        "store/query.rs",
        "use super::Tier; // the parent's re-export of rollup\n",
    );
    write("store/rollup.rs", "pub struct Tier; fn f() { super::query::x(); }\n");
    write("source/mod.rs", "use crate::detect::Thing;\n");
    write("detect/mod.rs", "use crate::source::Other;\n");
    write("agent.rs", "use crate::config::Config;\nfn g() { let s = \"crate::cli\"; }\n#[cfg(test)]\nmod tests { use crate::agent; }\n");
    let problems = violations(src);
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(has("config imports store"), "{problems:#?}");
    assert!(has("circle in store: query and rollup"), "{problems:#?}");
    assert!(
        has("source imports detect") && has("detect imports source"),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 5, "{problems:#?}");
}
