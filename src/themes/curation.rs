//! `verbatim themes list|show|rename|merge`: analysts curate the themes.
//!
//! Renames and merges go to `themes/curation.json`, never into the job's
//! state: a running job applies them at its next commit, a refit keeps them
//! (they are keyed by theme id, and merged ids resolve to the theme that took
//! them in), and `themes/themes.parquet` is rewritten at once.

use serde::Serialize;

use crate::config::ThemesConfig;
use crate::themes::online::ThemeModel;
use crate::themes::store::{StoreError, ThemeStore};

/// Errors of the curation commands.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The theme files could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output root has no theme model yet.
    #[error("{0}: no themes/ model yet. Fix: run the job (with [nlp] and themes.enabled) or `verbatim themes refit` first")]
    NoModel(String),
    /// No theme with that id.
    #[error("no theme {id} under {root}. Fix: pick an id from `verbatim themes list --output-root {root}`")]
    NoTheme {
        /// The id asked for.
        id: u32,
        /// The output root.
        root: String,
    },
    /// The merge would do nothing.
    #[error("themes {0} and {1} are already one theme")]
    SameTheme(u32, u32),
}

/// One theme as the commands show it.
#[derive(Debug, Clone, Serialize)]
pub struct ThemeInfo {
    /// Id.
    pub id: u32,
    /// The label shown (the analyst's when renamed).
    pub label: String,
    /// Keywords beside the label.
    pub keywords: Vec<String>,
    /// The label in each language of the theme's texts, when more than one.
    pub label_by_language: std::collections::BTreeMap<String, String>,
    /// Renamed by an analyst.
    pub curated: bool,
    /// Comments that joined it.
    pub comments: u64,
    /// Ids merged into it.
    pub merged: Vec<u32>,
    /// Representative comments.
    pub exemplars: Vec<String>,
    /// Phrases the most of its texts hold, with how many.
    pub top_terms: Vec<(String, u32)>,
    /// The target its mentions are about; `None`: whole comments.
    pub target: Option<String>,
}

fn model(store: &ThemeStore) -> Result<ThemeModel, AdminError> {
    if !store.has_model()? {
        return Err(AdminError::NoModel(store.output().url().to_string()));
    }
    Ok(store.load_model(&ThemesConfig::default(), 0)?)
}

fn no_theme(store: &ThemeStore, id: u32) -> AdminError {
    AdminError::NoTheme {
        id,
        root: store.output().url().to_string(),
    }
}

fn info(m: &ThemeModel, id: u32) -> Option<ThemeInfo> {
    let t = m.theme(id)?;
    let mut terms: Vec<(String, u32)> = t
        .terms
        .counts
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    terms.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    terms.truncate(10);
    Some(ThemeInfo {
        id: t.id,
        label: t.shown_label().to_string(),
        keywords: t.keywords.clone(),
        label_by_language: t.label_by_language.clone(),
        curated: t.curated_label.is_some(),
        comments: t.count,
        merged: m
            .aliases()
            .keys()
            .filter(|&&a| m.resolve(a) == t.id)
            .copied()
            .collect(),
        exemplars: t.exemplars.iter().map(|(_, x)| x.clone()).collect(),
        top_terms: terms,
        target: t.target.clone(),
    })
}

/// Every theme, largest first.
pub fn list(store: &ThemeStore) -> Result<Vec<ThemeInfo>, AdminError> {
    let m = model(store)?;
    let mut v: Vec<ThemeInfo> = m.themes().iter().filter_map(|t| info(&m, t.id)).collect();
    v.sort_by(|a, b| b.comments.cmp(&a.comments).then(a.id.cmp(&b.id)));
    Ok(v)
}

/// The largest `n` of `all` (listed largest first, as [`list`] gives them);
/// with `targets`, only those targets' themes, target by target in the
/// order given, the largest `n` of each.
pub fn top(all: Vec<ThemeInfo>, targets: &[String], n: Option<usize>) -> Vec<ThemeInfo> {
    let n = n.unwrap_or(usize::MAX);
    if targets.is_empty() {
        return all.into_iter().take(n).collect();
    }
    targets
        .iter()
        .flat_map(|want| {
            all.iter()
                .filter(|t| t.target.as_deref() == Some(want.as_str()))
                .take(n)
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `themes list` as text: one line per theme (id, items, target, label),
/// and with `exemplars > 0` its keywords and that many exemplars under it.
pub fn render_list(themes: &[ThemeInfo], exemplars: usize) -> String {
    use std::fmt::Write;
    let mut out = format!("{:>6}  {:>8}  {:<11}  label\n", "id", "items", "target");
    for t in themes {
        let _ = writeln!(
            out,
            "{:>6}  {:>8}  {:<11}  {}{}",
            t.id,
            t.comments,
            t.target.as_deref().unwrap_or("(comment)"),
            t.label,
            if t.curated { " (renamed)" } else { "" }
        );
        if exemplars == 0 {
            continue;
        }
        if !t.keywords.is_empty() {
            let _ = writeln!(out, "{:>30}keywords: {}", "", t.keywords.join(", "));
        }
        for e in t.exemplars.iter().take(exemplars) {
            let _ = writeln!(out, "{:>30}- {}", "", e.trim());
        }
    }
    out
}

/// One theme (a merged-away id shows the theme that took it in).
pub fn show(store: &ThemeStore, id: u32) -> Result<ThemeInfo, AdminError> {
    let m = model(store)?;
    info(&m, id).ok_or_else(|| no_theme(store, id))
}

/// Gives theme `id` a label that refits and relabelling keep.
pub fn rename(store: &ThemeStore, id: u32, label: &str) -> Result<ThemeInfo, AdminError> {
    let mut m = model(store)?;
    let Some(t) = m.theme(id) else {
        return Err(no_theme(store, id));
    };
    let id = t.id;
    let mut c = store.curation()?;
    c.renames.insert(id, label.trim().to_string());
    store.save_curation(&c)?;
    m.apply(&c);
    store.write_snapshot(&m)?;
    info(&m, id).ok_or_else(|| no_theme(store, id))
}

/// Merges theme `b` into theme `a`: `b`'s comments count as `a` from now on.
pub fn merge(store: &ThemeStore, a: u32, b: u32) -> Result<ThemeInfo, AdminError> {
    let mut m = model(store)?;
    for id in [a, b] {
        if m.theme(id).is_none() {
            return Err(no_theme(store, id));
        }
    }
    let (ra, rb) = (m.resolve(a), m.resolve(b));
    if ra == rb {
        return Err(AdminError::SameTheme(a, b));
    }
    let mut c = store.curation()?;
    c.merges.push([rb, ra]);
    store.save_curation(&c)?;
    m.apply(&c);
    store.write_snapshot(&m)?;
    info(&m, ra).ok_or_else(|| no_theme(store, ra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nlp::encoder::normalize;

    fn v(k: usize, j: f32) -> Vec<f32> {
        let mut x = vec![0.01 * j; 8];
        x[k] = 1.0;
        normalize(&mut x);
        x
    }

    fn theme(id: u32, target: Option<&str>, items: u64) -> ThemeInfo {
        ThemeInfo {
            id,
            label: format!("label {id}"),
            keywords: vec!["a".into(), "b".into()],
            label_by_language: Default::default(),
            curated: false,
            comments: items,
            merged: Vec::new(),
            exemplars: vec![" first ".into(), "second".into(), "third".into()],
            top_terms: Vec::new(),
            target: target.map(str::to_string),
        }
    }

    #[test]
    fn top_keeps_the_largest_per_target_in_the_order_asked() {
        let all = vec![
            theme(1, Some("product"), 9),
            theme(2, Some("staff"), 8),
            theme(3, Some("product"), 7),
            theme(4, Some("price"), 6),
            theme(5, Some("staff"), 5),
            theme(6, Some("product"), 4),
        ];
        let ids = |v: Vec<ThemeInfo>| v.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(top(all.clone(), &[], Some(2))), [1, 2]);
        assert_eq!(ids(top(all.clone(), &[], None)), [1, 2, 3, 4, 5, 6]);
        let staff_then_product = ["staff".to_string(), "product".to_string()];
        assert_eq!(
            ids(top(all.clone(), &staff_then_product, Some(2))),
            [2, 5, 1, 3]
        );
        assert_eq!(ids(top(all, &["delivery".into()], None)), Vec::<u32>::new());
    }

    #[test]
    fn the_list_shows_exemplars_only_when_asked() {
        let t = [theme(7, Some("staff"), 3), theme(8, None, 2)];
        let plain = render_list(&t, 0);
        assert_eq!(plain.lines().count(), 3, "{plain}");
        assert!(plain.contains("(comment)") && plain.contains("label 8"));
        let two = render_list(&t, 2);
        assert!(two.contains("keywords: a, b"), "{two}");
        assert!(
            two.contains("- first\n") && two.contains("- second\n"),
            "{two}"
        );
        assert!(!two.contains("third"), "{two}");
    }

    #[test]
    fn rename_and_merge_are_kept_apart_from_the_state_and_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ThemesConfig {
            cluster_every: 6,
            ..ThemesConfig::default()
        };
        let mut m = ThemeModel::new(cfg, 8);
        for i in 0..6 {
            m.assign(
                &v(i % 2, i as f32),
                if i % 2 == 0 {
                    "card arrived late"
                } else {
                    "refund missing"
                },
            );
        }
        assert_eq!(m.themes().len(), 2);
        let out = crate::sink::store::OutputStore::local(dir.path()).unwrap();
        let store = ThemeStore::new(out);
        assert!(matches!(list(&store), Err(AdminError::NoModel(_))));
        store.save_state(&m).unwrap();
        let state_path = dir.path().join(crate::themes::store::STATE);
        let state_before = std::fs::read(&state_path).unwrap();
        let ids: Vec<u32> = list(&store).unwrap().iter().map(|t| t.id).collect();
        let r = rename(&store, ids[0], "Card delivery").unwrap();
        assert!(r.curated && r.label == "Card delivery");
        let merged = merge(&store, ids[0], ids[1]).unwrap();
        assert_eq!(merged.merged, vec![ids[1]]);
        assert_eq!(merged.comments, 6);
        assert_eq!(
            std::fs::read(&state_path).unwrap(),
            state_before,
            "the job's state is not touched"
        );
        // A job loading the model sees both, and the merged id resolves.
        let back = store.load_model(&ThemesConfig::default(), 8).unwrap();
        assert_eq!(back.themes().len(), 1);
        assert_eq!(back.label(ids[1]), Some("Card delivery"));
        assert!(matches!(
            merge(&store, ids[0], ids[1]),
            Err(AdminError::SameTheme(..))
        ));
        assert!(matches!(show(&store, 999), Err(AdminError::NoTheme { .. })));
        assert!(dir.path().join(crate::themes::store::SNAPSHOT).is_file());
    }
}
