//! The crate's layout shows its architecture: the record and the config at
//! the bottom, the stream's stages above them in the order a comment meets
//! them, offline work and the commands on top. This test reads every
//! `crate::<module>` path in `src/` (comments skipped) and fails when a
//! top-level module uses one that sits above it, which is what an import
//! loop between modules would need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules from the bottom up; each may use only those before it.
const LAYERS: [&str; 15] = [
    "comment",
    "config",
    "failpoint",
    "metrics",
    "decode",
    "batch",
    "nlp",
    "sink",
    "themes",
    "history",
    "source",
    "followup",
    "pipeline",
    "report",
    "cli",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `module -> {module it uses -> first place}` over `src/`.
fn uses() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let used: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !used.is_empty() && used != top {
                    out.entry(top.clone())
                        .or_default()
                        .entry(used)
                        .or_insert_with(|| format!("{}:{}", rel.display(), i + 1));
                }
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let layer = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (module, used) in uses() {
        let Some(me) = layer(&module) else {
            wrong.push(format!("{module} is not in LAYERS: place it"));
            continue;
        };
        for (other, place) in used {
            match layer(&other) {
                Some(o) if o < me => {}
                Some(_) => wrong.push(format!("{module} uses {other} above it ({place})")),
                None => wrong.push(format!("{other} is not in LAYERS ({place})")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_record_and_the_config_depend_on_no_stage() {
    let u = uses();
    let allowed: BTreeSet<&str> = ["comment"].into();
    for m in ["comment", "config"] {
        for other in u
            .get(m)
            .map(|x| x.keys().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            assert!(allowed.contains(other.as_str()), "{m} uses {other}");
        }
    }
}
