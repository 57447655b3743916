//! The themes stage: online clustering of comment embeddings into themes
//! with stable ids.
//!
//! - A comment whose embedding has cosine `>= join_similarity` with a theme's
//!   centroid joins it (the centroid, counts, term counts and exemplars are
//!   updated).
//! - Any other comment is written with its nearest theme (and that
//!   similarity, so analysts can filter on it), or no theme when none exists
//!   yet, and waits in a bounded novelty buffer.
//! - Every `cluster_every` new buffered comments, the buffer is clustered
//!   (average linkage on cosine distance, the `kodama` crate, cut at
//!   `cluster_distance`); clusters of at least `min_theme_size` become new
//!   themes, or join an existing theme whose centroid is as close as
//!   `join_similarity`.
//!
//! State is bounded: per theme a centroid sum, a count, at most
//! [`TermCounts::CAP`] term counts and three exemplars; the buffer holds at
//! most `buffer` comments. Ids are never reused. The state is saved before
//! every file commit (`<output.root>/themes/state.json`, written atomically),
//! so a restart keeps every id.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::labels::{labels, TermCounts};
use super::store::ThemeStore;
use crate::batch::CommentBatch;
use crate::config::ThemesConfig;
use crate::nlp::encoder::{dot, normalize};
use crate::nlp::{Operator, OperatorError};

/// One theme.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Theme {
    /// Stable id, never reused.
    pub id: u32,
    /// c-TF-IDF label (recomputed as the theme grows; ids do not change).
    pub label: String,
    /// Comments that joined it.
    pub count: u64,
    /// Sum of the members' vectors (the centroid is its direction).
    pub sum: Vec<f32>,
    /// Term counts for the label.
    pub terms: TermCounts,
    /// Up to three members closest to the centroid when they joined: `(similarity, text)`.
    pub exemplars: Vec<(f32, String)>,
    /// A label an analyst gave it (`verbatim themes rename`); wins over `label`.
    #[serde(default)]
    pub curated_label: Option<String>,
}

impl Theme {
    /// An empty theme with this id.
    pub fn empty(id: u32, dim: usize) -> Self {
        Self {
            id,
            label: String::new(),
            count: 0,
            sum: vec![0.0; dim],
            terms: TermCounts::default(),
            exemplars: Vec::new(),
            curated_label: None,
        }
    }

    /// The label to show: the analyst's, else the c-TF-IDF one.
    pub fn shown_label(&self) -> &str {
        self.curated_label.as_deref().unwrap_or(&self.label)
    }

    /// Folds `other`'s members into this theme.
    fn absorb(&mut self, other: Theme) {
        self.count += other.count;
        self.sum
            .iter_mut()
            .zip(&other.sum)
            .for_each(|(s, x)| *s += x);
        for (term, c) in other.terms.counts {
            *self.terms.counts.entry(term).or_default() += c;
        }
        self.terms.words += other.terms.words;
        self.exemplars.extend(other.exemplars);
        self.exemplars.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.exemplars.truncate(3);
    }
}

/// What analysts changed (`verbatim themes rename|merge`), kept apart from
/// the model in `themes/curation.json` so that it survives refits and a
/// running job picks it up at its next commit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Curation {
    /// Label per theme id.
    #[serde(default)]
    pub renames: std::collections::BTreeMap<u32, String>,
    /// `[from, into]`: `from`'s comments belong to `into` from now on.
    #[serde(default)]
    pub merges: Vec<[u32; 2]>,
}

/// Where a comment went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assignment {
    /// The theme (nearest one when the comment did not join).
    pub theme: Option<u32>,
    /// Cosine with that theme's centroid.
    pub similarity: f32,
    /// Whether the comment joined the theme (else it waits in the buffer).
    pub joined: bool,
}

/// The online theme model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThemeModel {
    cfg: ThemesConfig,
    themes: Vec<Theme>,
    /// Normalised centroids, row-major, one row per theme (derived; rebuilt on load).
    #[serde(skip)]
    centroids: Vec<f32>,
    buffer: VecDeque<(Vec<f32>, String)>,
    since_cluster: usize,
    next_id: u32,
    dim: usize,
    /// The model version this state descends from (`verbatim themes refit`
    /// writes new ones; 0: never refitted).
    #[serde(default)]
    version: u64,
    /// Merged-away ids and the theme that took them in.
    #[serde(default)]
    aliases: std::collections::BTreeMap<u32, u32>,
}

impl ThemeModel {
    /// An empty model for vectors of `dim`.
    pub fn new(cfg: ThemesConfig, dim: usize) -> Self {
        Self {
            cfg,
            themes: Vec::new(),
            centroids: Vec::new(),
            buffer: VecDeque::new(),
            since_cluster: 0,
            next_id: 1,
            dim,
            version: 0,
            aliases: Default::default(),
        }
    }

    /// A model version made by a refit: these themes, ids from `next_id` on
    /// for new ones, the aliases so far.
    pub fn from_refit(
        cfg: ThemesConfig,
        dim: usize,
        themes: Vec<Theme>,
        next_id: u32,
        version: u64,
        aliases: std::collections::BTreeMap<u32, u32>,
    ) -> Self {
        let mut m = Self::new(cfg, dim);
        m.themes = themes;
        m.next_id = next_id;
        m.version = version;
        m.aliases = aliases;
        m.rebuild_centroids();
        m
    }

    /// The themes, in creation order.
    pub fn themes(&self) -> &[Theme] {
        &self.themes
    }

    /// The vector size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The next id a new theme gets.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// The model version (0: never refitted).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Merged-away ids and where they went.
    pub fn aliases(&self) -> &std::collections::BTreeMap<u32, u32> {
        &self.aliases
    }

    /// The settings.
    pub fn config(&self) -> &ThemesConfig {
        &self.cfg
    }

    /// The theme an id now stands for (following merges).
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..64 {
            match self.aliases.get(&id) {
                Some(&to) if to != id => id = to,
                _ => break,
            }
        }
        id
    }

    /// Theme `id` (after merges).
    pub fn theme(&self, id: u32) -> Option<&Theme> {
        let id = self.resolve(id);
        self.themes.iter().find(|t| t.id == id)
    }

    /// Folds theme `from` into theme `into`; `from`'s id then resolves to `into`.
    pub fn merge(&mut self, from: u32, into: u32) -> Result<(), String> {
        let (from, into) = (self.resolve(from), self.resolve(into));
        if from == into {
            return Err(format!("themes {from} and {into} are already one theme"));
        }
        let fi = self.themes.iter().position(|t| t.id == from);
        let ii = self.themes.iter().position(|t| t.id == into);
        let (Some(fi), Some(_)) = (fi, ii) else {
            return Err(format!(
                "no theme {} in the model",
                if fi.is_none() { from } else { into }
            ));
        };
        let gone = self.themes.remove(fi);
        if let Some(t) = self.themes.iter_mut().find(|t| t.id == into) {
            t.absorb(gone);
        }
        self.aliases.insert(from, into);
        self.rebuild_centroids();
        Ok(())
    }

    /// Applies analysts' merges and renames (idempotent).
    pub fn apply(&mut self, c: &Curation) {
        for [from, into] in &c.merges {
            if self.resolve(*from) != self.resolve(*into) {
                if let Err(e) = self.merge(*from, *into) {
                    tracing::warn!(from, into, "theme curation: {e}");
                }
            }
        }
        for t in &mut self.themes {
            t.curated_label = c.renames.get(&t.id).cloned();
        }
    }

    /// Takes over a newer model version: its themes and ids; this job's
    /// novelty buffer stays (its comments are still unassigned).
    pub fn adopt(&mut self, newer: ThemeModel) {
        self.themes = newer.themes;
        self.next_id = self.next_id.max(newer.next_id);
        self.version = newer.version;
        self.aliases = newer.aliases;
        self.rebuild_centroids();
    }

    fn rebuild_centroids(&mut self) {
        self.centroids = Vec::with_capacity(self.themes.len() * self.dim);
        for t in &self.themes {
            let mut c = t.sum.clone();
            normalize(&mut c);
            self.centroids.extend(c);
        }
    }

    fn nearest(&self, v: &[f32]) -> Option<(usize, f32)> {
        self.centroids
            .chunks(self.dim)
            .map(|c| dot(c, v))
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn join(&mut self, k: usize, v: &[f32], text: &str, similarity: f32) {
        let t = &mut self.themes[k];
        t.count += 1;
        t.sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
        t.terms.add(text);
        if t.exemplars.len() < 3 {
            t.exemplars.push((similarity, text.to_string()));
        } else if let Some(min) = t
            .exemplars
            .iter_mut()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|m| m.0 < similarity)
        {
            *min = (similarity, text.to_string());
        }
        let mut c = t.sum.clone();
        normalize(&mut c);
        self.centroids[k * self.dim..(k + 1) * self.dim].copy_from_slice(&c);
    }

    /// Assigns one comment (its L2-normalised embedding and text).
    pub fn assign(&mut self, v: &[f32], text: &str) -> Assignment {
        if self.centroids.len() != self.themes.len() * self.dim {
            self.rebuild_centroids();
        }
        let near = self.nearest(v);
        if let Some((k, sim)) = near {
            if sim >= self.cfg.join_similarity() {
                self.join(k, v, text, sim);
                return Assignment {
                    theme: Some(self.themes[k].id),
                    similarity: sim,
                    joined: true,
                };
            }
        }
        self.buffer.push_back((v.to_vec(), text.to_string()));
        while self.buffer.len() > self.cfg.buffer {
            self.buffer.pop_front();
        }
        self.since_cluster += 1;
        if self.since_cluster >= self.cfg.cluster_every {
            self.cluster_buffer();
        }
        Assignment {
            theme: near.map(|(k, _)| self.themes[k].id),
            similarity: near.map_or(0.0, |(_, s)| s),
            joined: false,
        }
    }

    /// Assigns a batch of comments in order, then gives each that did not
    /// join a theme its nearest theme after the whole batch: a theme the
    /// novelty buffer formed from this batch's comments is then already
    /// theirs, instead of the nearest theme at the moment each arrived.
    /// Comments that joined keep the theme they joined.
    pub fn assign_batch(&mut self, items: &[(&[f32], &str)]) -> Vec<Assignment> {
        let first: Vec<Assignment> = items.iter().map(|(v, t)| self.assign(v, t)).collect();
        if self.centroids.len() != self.themes.len() * self.dim {
            self.rebuild_centroids();
        }
        first
            .into_iter()
            .zip(items)
            .map(|(a, (v, _))| match self.nearest(v) {
                Some((k, sim)) if !a.joined => Assignment {
                    theme: Some(self.themes[k].id),
                    similarity: sim,
                    joined: false,
                },
                _ => a,
            })
            .collect()
    }

    /// Clusters the novelty buffer into new themes (or into existing ones
    /// they turn out to be close to); what does not form a cluster stays.
    pub fn cluster_buffer(&mut self) {
        self.since_cluster = 0;
        let n = self.buffer.len();
        if n < self.cfg.min_theme_size.max(2) {
            return;
        }
        let items: Vec<&[f32]> = self.buffer.iter().map(|(v, _)| v.as_slice()).collect();
        let groups = clusters_below(&items, self.cfg.cluster_distance());
        let mut taken = vec![false; n];
        let mut changed = false;
        let min_size = self.cfg.min_theme_size;
        for members in groups.iter().filter(|m| m.len() >= min_size) {
            let mut sum = vec![0f32; self.dim];
            for &i in members {
                sum.iter_mut()
                    .zip(&self.buffer[i].0)
                    .for_each(|(s, x)| *s += x);
            }
            let mut c = sum.clone();
            normalize(&mut c);
            let k = match self.nearest(&c) {
                Some((k, sim)) if sim >= self.cfg.join_similarity() => k,
                _ => {
                    self.themes.push(Theme::empty(self.next_id, self.dim));
                    self.next_id += 1;
                    self.centroids.extend(&c);
                    self.themes.len() - 1
                }
            };
            for &i in members {
                let (v, text) = self.buffer[i].clone();
                let sim = dot(&v, &c);
                self.join(k, &v, &text, sim);
                taken[i] = true;
            }
            changed = true;
        }
        let mut i = 0;
        self.buffer.retain(|_| {
            let keep = !taken[i];
            i += 1;
            keep
        });
        if changed {
            self.relabel();
        }
    }

    /// Recomputes every theme's label from its term counts.
    pub fn relabel(&mut self) {
        let refs: Vec<&TermCounts> = self.themes.iter().map(|t| &t.terms).collect();
        let l = labels(&refs, 3);
        for (t, l) in self.themes.iter_mut().zip(l) {
            t.label = l;
        }
    }

    /// The label of theme `id` (the analyst's when renamed).
    pub fn label(&self, id: u32) -> Option<&str> {
        self.theme(id).map(Theme::shown_label)
    }

    /// The state as JSON (what `themes/state.json` holds).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// A state saved with [`ThemeModel::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let mut m: Self = serde_json::from_slice(bytes)?;
        m.rebuild_centroids();
        Ok(m)
    }
}

/// Average-linkage clusters of unit vectors (the `kodama` crate), cut where
/// the cosine distance between clusters passes `cut`: groups of indices into
/// `items`, singletons included.
pub fn clusters_below(items: &[&[f32]], cut: f32) -> Vec<Vec<usize>> {
    let n = items.len();
    if n == 0 {
        return Vec::new();
    }
    let mut condensed = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            condensed.push((1.0 - dot(items[i], items[j])).max(0.0));
        }
    }
    let dendro = kodama::linkage(&mut condensed, n, kodama::Method::Average);
    // Union the merges below the distance (steps come in order).
    let mut parent: Vec<usize> = (0..2 * n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (s, step) in dendro.steps().iter().enumerate() {
        if step.dissimilarity > cut {
            break;
        }
        let a = find(&mut parent, step.cluster1);
        let b = find(&mut parent, step.cluster2);
        parent[a] = n + s;
        parent[b] = n + s;
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in 0..n {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups.into_values().collect()
}

/// The stage: assigns every embedded comment in a language the model reads.
pub struct ThemeOperator {
    model: ThemeModel,
    store: ThemeStore,
    curation_at: Option<String>,
    languages: Vec<String>,
    labels: std::collections::HashMap<u32, Arc<str>>,
}

impl ThemeOperator {
    /// A stage whose state lives under `themes/` of the output store (see
    /// [`ThemeStore`]): loaded when present, so ids survive restarts.
    pub fn open(
        cfg: &ThemesConfig,
        store: ThemeStore,
        dim: usize,
        languages: &[String],
    ) -> Result<Self, OperatorError> {
        let curation_at = store.curation_stamp().map_err(store_failed)?;
        let model = store.load_model(cfg, dim).map_err(store_failed)?;
        Ok(Self {
            model,
            store,
            curation_at,
            languages: languages.to_vec(),
            labels: Default::default(),
        })
    }

    /// The model (for the demo and tests).
    pub fn model(&self) -> &ThemeModel {
        &self.model
    }
}

impl Operator for ThemeOperator {
    fn name(&self) -> &str {
        "themes"
    }

    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
        // Labels as of the end of the previous batch: what a row is written
        // with then depends on the rows before it, not on when files were
        // committed.
        self.model.relabel();
        self.labels.clear();
        // The batch's comments in a language the model reads, assigned
        // together (see `ThemeModel::assign_batch`).
        let themed: Vec<usize> = (0..batch.comments.len())
            .filter(|&i| {
                let c = &batch.comments[i];
                c.nlp.embedding.is_some()
                    && c.nlp
                        .language
                        .is_some_and(|l| self.languages.iter().any(|x| x == l))
            })
            .collect();
        let items: Vec<(&[f32], &str)> = themed
            .iter()
            .filter_map(|&i| {
                let c = &batch.comments[i];
                Some((c.nlp.embedding.as_deref()?, c.text.as_str()))
            })
            .collect();
        let assigned = self.model.assign_batch(&items);
        for (&i, a) in themed.iter().zip(assigned) {
            let c = &mut batch.comments[i];
            c.nlp.theme = a.theme.map(|id| {
                let label = self
                    .labels
                    .entry(id)
                    .or_insert_with(|| Arc::from(self.model.label(id).unwrap_or("")))
                    .clone();
                (id, label, a.similarity)
            });
        }
        Ok(())
    }

    fn before_commit(&mut self) -> Result<(), OperatorError> {
        // A refit or an analyst's rename/merge since the last commit?
        let curation_at = self.store.curation_stamp().map_err(store_failed)?;
        let newer = self
            .store
            .latest_version()
            .map_err(store_failed)?
            .is_some_and(|v| v > self.model.version());
        if newer || curation_at != self.curation_at {
            self.store.refresh(&mut self.model).map_err(store_failed)?;
            self.curation_at = curation_at;
            self.model.relabel();
            self.labels.clear();
        }
        self.store.save_state(&self.model).map_err(store_failed)?;
        self.store.write_snapshot(&self.model).map_err(store_failed)
    }
}

fn store_failed(e: super::store::StoreError) -> OperatorError {
    OperatorError::Failed {
        operator: "themes".into(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u32, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim)
            .map(|i| ((seed as f32 * 12.9898 + i as f32 * 78.233).sin() * 43758.547).fract())
            .collect();
        normalize(&mut v);
        v
    }

    fn near(base: &[f32], seed: u32, eps: f32) -> Vec<f32> {
        let noise = unit(seed, base.len());
        let mut v: Vec<f32> = base.iter().zip(&noise).map(|(a, b)| a + eps * b).collect();
        normalize(&mut v);
        v
    }

    fn cfg() -> ThemesConfig {
        ThemesConfig {
            cluster_every: 8,
            ..ThemesConfig::default()
        }
    }

    #[test]
    fn groups_form_themes_and_new_members_join() {
        let dim = 32;
        let basis = |k: usize| {
            let mut v = vec![0f32; dim];
            v[k] = 1.0;
            v
        };
        let (a, b) = (basis(0), basis(1));
        let mut m = ThemeModel::new(cfg(), dim);
        for i in 0..8 {
            let (v, t) = if i % 2 == 0 {
                (near(&a, 100 + i, 0.1), "card not arrived")
            } else {
                (near(&b, 200 + i, 0.1), "payment declined")
            };
            m.assign(&v, t);
        }
        assert_eq!(m.themes().len(), 2, "two groups, two themes");
        let x = m.assign(&near(&a, 999, 0.1), "card not arrived yet");
        assert!(x.joined && x.similarity > 0.9);
        let y = m.assign(&near(&b, 998, 0.1), "declined again");
        assert!(y.joined && y.theme != x.theme);
        assert!(m.label(x.theme.unwrap()).unwrap().contains("arrived"));
    }

    #[test]
    fn state_round_trips_and_ids_survive() {
        let dim = 16;
        let a = unit(5, dim);
        let mut m = ThemeModel::new(cfg(), dim);
        for i in 0..8 {
            m.assign(&near(&a, 300 + i, 0.05), "refund missing");
        }
        let id = m.assign(&a, "refund missing").theme;
        assert!(id.is_some());
        let mut back = ThemeModel::from_json(&m.to_json().unwrap()).unwrap();
        assert_eq!(back.assign(&a, "refund missing").theme, id);
    }

    #[test]
    fn a_running_stage_takes_a_new_version_and_curation_over_at_commit() {
        let dim = 8;
        // The in-memory object store: what runs on a folder runs on a bucket.
        let spool = tempfile::tempdir().unwrap();
        let out = crate::sink::store::OutputStore::with_store(
            std::sync::Arc::new(object_store::memory::InMemory::new()),
            spool.path(),
        )
        .unwrap();
        let store = ThemeStore::new(out.clone());
        let mut op = ThemeOperator::open(&cfg(), store.clone(), dim, &["en".into()]).unwrap();
        op.before_commit().unwrap();
        assert_eq!(op.model().version(), 0);
        // A refit elsewhere writes version 1 with one theme; an analyst renames it.
        let mut t = Theme::empty(7, dim);
        t.sum[0] = 1.0;
        t.count = 1;
        let v1 = ThemeModel::from_refit(cfg(), dim, vec![t], 8, 1, Default::default());
        store.write_version(&v1).unwrap();
        let mut c = Curation::default();
        c.renames.insert(7, "Late cards".into());
        store.save_curation(&c).unwrap();
        op.before_commit().unwrap();
        assert_eq!(op.model().version(), 1);
        assert_eq!(op.model().label(7), Some("Late cards"));
        let saved = ThemeModel::from_json(&out.get(super::super::store::STATE).unwrap()).unwrap();
        assert_eq!(saved.version(), 1, "the state carries the version on");
        assert!(out.exists(super::super::store::SNAPSHOT).unwrap());
        // A second rename reaches the running stage at its next commit.
        c.renames.insert(7, "Cards arriving late".into());
        store.save_curation(&c).unwrap();
        op.before_commit().unwrap();
        assert_eq!(op.model().label(7), Some("Cards arriving late"));
    }

    #[test]
    fn a_batch_gets_the_theme_its_own_comments_formed() {
        let dim = 32;
        let basis = |k: usize| {
            let mut v = vec![0f32; dim];
            v[k] = 1.0;
            v
        };
        // One theme exists (about basis 0); a batch brings eight comments
        // of a new subject (basis 1), which form a theme once the buffer is
        // clustered, after the first of them arrived.
        let (a, b) = (basis(0), basis(1));
        let seed: Vec<Vec<f32>> = (0..8).map(|i| near(&a, 100 + i, 0.1)).collect();
        let batch: Vec<Vec<f32>> = (0..8).map(|i| near(&b, 200 + i, 0.1)).collect();
        let items = |vs: &[Vec<f32>], t: &'static str| -> Vec<(Vec<f32>, &'static str)> {
            vs.iter().map(|v| (v.clone(), t)).collect()
        };
        let run = |batched: bool| {
            let mut m = ThemeModel::new(cfg(), dim);
            for (v, t) in items(&seed, "card not arrived") {
                m.assign(&v, t);
            }
            let new = items(&batch, "payment declined");
            let got: Vec<Assignment> = if batched {
                let refs: Vec<(&[f32], &str)> =
                    new.iter().map(|(v, t)| (v.as_slice(), *t)).collect();
                m.assign_batch(&refs)
            } else {
                new.iter().map(|(v, t)| m.assign(v, t)).collect()
            };
            (m, got)
        };
        let (one_by_one, early) = run(false);
        let (batched, late) = run(true);
        assert_eq!(one_by_one, batched, "the model is the same either way");
        assert_eq!(batched.themes().len(), 2);
        let new_id = batched.themes()[1].id;
        // One by one, the first comments were written with the only theme
        // there was; in a batch, every comment gets the theme it formed.
        assert!(early.iter().any(|x| x.theme != Some(new_id)));
        assert!(late.iter().all(|x| x.theme == Some(new_id)), "{late:?}");
        assert!(late.iter().all(|x| x.similarity > 0.9));
    }

    #[test]
    fn buffer_is_bounded() {
        let dim = 8;
        let mut m = ThemeModel::new(
            ThemesConfig {
                buffer: 10,
                cluster_every: 1000,
                ..ThemesConfig::default()
            },
            dim,
        );
        for i in 0..100 {
            m.assign(&unit(i, dim), "x");
        }
        assert!(m.buffer.len() <= 10);
    }
}
