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

use super::ids::IdPool;
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
    /// Label phrase (see [`super::labels`]; recomputed as the theme grows,
    /// ids do not change).
    pub label: String,
    /// Up to three keywords beside the label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// The label in each language of the theme's texts, when it has more
    /// than one (`en`, `ru`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub label_by_language: std::collections::BTreeMap<String, String>,
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
    /// The target its mentions are about (`staff`, `product`…): a theme
    /// holds mentions of one target only. `None`: a theme of whole
    /// comments (`themes.unit = "comment"`, or comments with no mention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Theme {
    /// An empty theme with this id.
    pub fn empty(id: u32, dim: usize) -> Self {
        Self {
            id,
            label: String::new(),
            keywords: Vec::new(),
            label_by_language: Default::default(),
            count: 0,
            sum: vec![0.0; dim],
            terms: TermCounts::default(),
            exemplars: Vec::new(),
            curated_label: None,
            target: None,
        }
    }

    /// An empty theme with this id for mentions of `target`.
    pub fn empty_for(id: u32, dim: usize, target: Option<&str>) -> Self {
        Self {
            target: target.map(str::to_string),
            ..Self::empty(id, dim)
        }
    }

    /// The label to show: the analyst's, else the phrase from its texts.
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
        self.terms.absorb(other.terms);
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

/// One comment or mention to assign: its L2-normalised vector, its text
/// (the clause, for a mention) and its target (`None`: a whole comment).
#[derive(Debug, Clone, Copy)]
pub struct ThemeInput<'a> {
    /// What it is about; themes of another target are never its theme.
    pub target: Option<&'a str>,
    /// Its vector in the comments' embedding space.
    pub vector: &'a [f32],
    /// Its text, for labels and exemplars.
    pub text: &'a str,
    /// The comment it comes from ([`crate::comment::stable_hash`] of its
    /// id): a comment's mentions count once toward `min_theme_size`, so
    /// one long comment never forms a theme alone. `None`: a source of its
    /// own.
    pub source: Option<u64>,
}

impl<'a> ThemeInput<'a> {
    /// A whole comment: no target, a source of its own.
    pub fn comment(vector: &'a [f32], text: &'a str) -> Self {
        Self {
            target: None,
            vector,
            text,
            source: None,
        }
    }
}

/// A comment or mention waiting in the novelty buffer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "PendingRepr")]
struct Pending {
    v: Vec<f32>,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<u64>,
}

/// What `themes/state.json` holds for a buffered item: states saved before
/// themes had targets wrote `[vector, text]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum PendingRepr {
    Pair(Vec<f32>, String),
    Full {
        v: Vec<f32>,
        text: String,
        #[serde(default)]
        target: Option<String>,
        #[serde(default)]
        source: Option<u64>,
    },
}

impl From<PendingRepr> for Pending {
    fn from(r: PendingRepr) -> Self {
        match r {
            PendingRepr::Pair(v, text) => Self {
                v,
                text,
                target: None,
                source: None,
            },
            PendingRepr::Full {
                v,
                text,
                target,
                source,
            } => Self {
                v,
                text,
                target,
                source,
            },
        }
    }
}

/// The online theme model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThemeModel {
    cfg: ThemesConfig,
    themes: Vec<Theme>,
    /// Normalised centroids, row-major, one row per theme (derived; rebuilt on load).
    #[serde(skip)]
    centroids: Vec<f32>,
    buffer: VecDeque<Pending>,
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
    /// On a refit's version: every theme id the refit re-clustered (the
    /// themes of the model it started from, and the ids the comments it
    /// read were written with). A job taking the version over keeps a
    /// theme of its own that is not among them: one it formed after the
    /// refit read the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    covers: Vec<u32>,
    /// The ids this writer claimed for new themes ([`super::ids`]); `None`:
    /// the only writer (tests, `eval-themes`), ids counted on from `next_id`.
    #[serde(skip)]
    ids: Option<IdPool>,
    /// A theme formed or took a member since the labels were made: the
    /// end of [`ThemeModel::assign`] or [`ThemeModel::assign_batch`] makes
    /// them again, once, however many clusters the batch formed.
    #[serde(skip)]
    labels_stale: bool,
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
            labels_stale: false,
            next_id: 1,
            dim,
            version: 0,
            aliases: Default::default(),
            covers: Vec::new(),
            ids: None,
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

    /// Gives the model claimed ids to mint new themes from; from then on it
    /// mints only those ([`super::ids`]).
    pub fn add_ids(&mut self, pool: IdPool) {
        self.ids.get_or_insert_with(IdPool::default).absorb(pool);
    }

    /// Takes the claimed ids that are left out of the model (it then
    /// claims again before minting).
    pub fn take_ids(&mut self) -> IdPool {
        self.ids.replace(IdPool::default()).unwrap_or_default()
    }

    /// Ids left to mint (unbounded for a model that claims none).
    pub fn ids_left(&self) -> u64 {
        self.ids.as_ref().map_or(u64::MAX, IdPool::left)
    }

    /// The most new themes assigning `items` more could form: every
    /// buffered and new item in a theme of `min_theme_size`.
    pub fn ids_needed(&self, items: usize) -> u64 {
        ((self.buffer.len() + items) / self.cfg.min_theme_size.max(1)) as u64 + 1
    }

    /// The id for a new theme: the next claimed one, or the next after
    /// every id so far for a model that claims none.
    fn mint(&mut self) -> Option<u32> {
        let id = match &mut self.ids {
            Some(pool) => pool.take()?,
            None => self.next_id,
        };
        self.next_id = self.next_id.max(id + 1);
        Some(id)
    }

    /// Takes in the themes another writer saved for the same model version
    /// (`themes/state.json` of an instance beside this one) that this
    /// model does not know and has not merged away, so every instance
    /// assigns to, and the snapshot shows, the themes of all. Its copies of
    /// themes both know stay this model's. A state of another version is
    /// left alone: the newer version already re-clustered what the older
    /// one held. Returns how many themes came in.
    pub fn absorb(&mut self, other: &ThemeModel) -> usize {
        if other.version != self.version || other.dim != self.dim {
            return 0;
        }
        let known: std::collections::HashSet<u32> = self.themes.iter().map(|t| t.id).collect();
        let mut added = 0;
        for t in &other.themes {
            if known.contains(&t.id) || self.aliases.contains_key(&t.id) {
                continue;
            }
            let mut c = t.sum.clone();
            normalize(&mut c);
            self.centroids.extend(c);
            self.themes.push(t.clone());
            self.next_id = self.next_id.max(t.id + 1);
            added += 1;
        }
        added
    }

    /// Gives themes new ids (`map`: old to new), as a refit does when it
    /// trades the ids it counted on for claimed ones.
    pub fn renumber(&mut self, map: &std::collections::HashMap<u32, u32>) {
        for t in &mut self.themes {
            if let Some(&to) = map.get(&t.id) {
                t.id = to;
                self.next_id = self.next_id.max(to + 1);
            }
        }
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
        let (Some(fi), Some(ii)) = (fi, ii) else {
            return Err(format!(
                "no theme {} in the model",
                if fi.is_none() { from } else { into }
            ));
        };
        if self.themes[fi].target != self.themes[ii].target {
            let name = |t: &Option<String>| t.clone().unwrap_or_else(|| "whole comments".into());
            return Err(format!(
                "theme {from} is about {} and theme {into} about {}: a theme holds one target",
                name(&self.themes[fi].target),
                name(&self.themes[ii].target)
            ));
        }
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

    /// Records the theme ids a refit re-clustered (see `covers`).
    pub fn set_covers(&mut self, mut ids: Vec<u32>) {
        ids.sort_unstable();
        ids.dedup();
        self.covers = ids;
    }

    /// Takes over a newer model version: its themes and ids; this job's
    /// novelty buffer stays (its comments are still unassigned), and so do
    /// the themes it formed after the refit read the root (not among the
    /// version's `covers`), whose comments the refit never saw.
    pub fn adopt(&mut self, newer: ThemeModel) {
        let own = std::mem::take(&mut self.themes);
        self.themes = newer.themes;
        let known: std::collections::HashSet<u32> = self.themes.iter().map(|t| t.id).collect();
        self.themes.extend(own.into_iter().filter(|t| {
            !known.contains(&t.id)
                && !newer.aliases.contains_key(&t.id)
                && newer.covers.binary_search(&t.id).is_err()
        }));
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

    /// The nearest theme of `target` and its cosine.
    fn nearest(&self, v: &[f32], target: Option<&str>) -> Option<(usize, f32)> {
        self.centroids
            .chunks(self.dim)
            .zip(&self.themes)
            .enumerate()
            .filter(|(_, (_, t))| t.target.as_deref() == target)
            .map(|(k, (c, _))| (k, dot(c, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn join(&mut self, k: usize, v: &[f32], text: &str, similarity: f32) {
        self.labels_stale = true;
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

    /// Assigns one whole comment (its L2-normalised embedding and text);
    /// the labels then count it.
    pub fn assign(&mut self, v: &[f32], text: &str) -> Assignment {
        let a = self.assign_one(ThemeInput {
            target: None,
            vector: v,
            text,
            source: None,
        });
        self.refresh_labels();
        a
    }

    /// Makes the labels again if a theme formed or took a member since
    /// they were last made.
    fn refresh_labels(&mut self) {
        if self.labels_stale {
            self.relabel();
        }
    }

    /// Assigns one comment or mention to a theme of its target. The labels
    /// are left as they were ([`ThemeModel::relabel`] makes them again).
    pub fn assign_one(&mut self, x: ThemeInput<'_>) -> Assignment {
        if self.centroids.len() != self.themes.len() * self.dim {
            self.rebuild_centroids();
        }
        let near = self.nearest(x.vector, x.target);
        if let Some((k, sim)) = near {
            if sim >= self.cfg.join_similarity() {
                self.join(k, x.vector, x.text, sim);
                return Assignment {
                    theme: Some(self.themes[k].id),
                    similarity: sim,
                    joined: true,
                };
            }
        }
        self.buffer.push_back(Pending {
            v: x.vector.to_vec(),
            text: x.text.to_string(),
            target: x.target.map(str::to_string),
            source: x.source,
        });
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

    /// Assigns a batch in order, then gives each item that did not join a
    /// theme its nearest theme (of its target) after the whole batch: a
    /// theme the novelty buffer formed from this batch is then already
    /// theirs, instead of the nearest theme at the moment each arrived.
    /// Items that joined keep the theme they joined. The labels are then
    /// made once, counting the whole batch.
    pub fn assign_batch(&mut self, items: &[ThemeInput<'_>]) -> Vec<Assignment> {
        let first: Vec<Assignment> = items.iter().map(|x| self.assign_one(*x)).collect();
        if self.centroids.len() != self.themes.len() * self.dim {
            self.rebuild_centroids();
        }
        self.refresh_labels();
        first
            .into_iter()
            .zip(items)
            .map(|(a, x)| match self.nearest(x.vector, x.target) {
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
    /// they turn out to be close to), each target's items apart; what does
    /// not form a cluster stays.
    pub fn cluster_buffer(&mut self) {
        self.since_cluster = 0;
        let n = self.buffer.len();
        if n < self.cfg.min_theme_size.max(2) {
            return;
        }
        let mut by_target: std::collections::BTreeMap<Option<String>, Vec<usize>> =
            Default::default();
        for (i, p) in self.buffer.iter().enumerate() {
            by_target.entry(p.target.clone()).or_default().push(i);
        }
        let mut taken = vec![false; n];
        let min_size = self.cfg.min_theme_size;
        for (target, idx) in by_target {
            if idx.len() < min_size.max(2) {
                continue;
            }
            let items: Vec<&[f32]> = idx.iter().map(|&i| self.buffer[i].v.as_slice()).collect();
            let groups = clusters_below(&items, self.cfg.cluster_distance());
            for members in groups.iter() {
                let members: Vec<usize> = members.iter().map(|&k| idx[k]).collect();
                // Comments, not clauses: one comment's sentences never make
                // a theme on their own.
                if self.sources(&members) < min_size {
                    continue;
                }
                let mut sum = vec![0f32; self.dim];
                for &i in &members {
                    sum.iter_mut()
                        .zip(&self.buffer[i].v)
                        .for_each(|(s, x)| *s += x);
                }
                let mut c = sum.clone();
                normalize(&mut c);
                let k = match self.nearest(&c, target.as_deref()) {
                    Some((k, sim)) if sim >= self.cfg.join_similarity() => k,
                    _ => {
                        // Out of claimed ids (the stage claims enough
                        // before each batch): the cluster waits.
                        let Some(id) = self.mint() else { continue };
                        self.themes
                            .push(Theme::empty_for(id, self.dim, target.as_deref()));
                        self.centroids.extend(&c);
                        self.themes.len() - 1
                    }
                };
                for &i in &members {
                    let p = self.buffer[i].clone();
                    let sim = dot(&p.v, &c);
                    self.join(k, &p.v, &p.text, sim);
                    taken[i] = true;
                }
            }
        }
        let mut i = 0;
        self.buffer.retain(|_| {
            let keep = !taken[i];
            i += 1;
            keep
        });
        // The labels wait for the end of the batch (`labels_stale`, set
        // by `join`): relabelling every theme at each cluster formed was
        // most of the themes stage's time.
    }

    /// Distinct comments among buffered items `members` (an item without a
    /// source is one of its own).
    fn sources(&self, members: &[usize]) -> usize {
        let mut seen = std::collections::BTreeSet::new();
        members
            .iter()
            .filter(|&&i| self.buffer[i].source.is_none_or(|s| seen.insert(s)))
            .count()
    }

    /// Recomputes every theme's label from its term counts.
    pub fn relabel(&mut self) {
        self.labels_stale = false;
        let refs: Vec<&TermCounts> = self.themes.iter().map(|t| &t.terms).collect();
        let central: Vec<Vec<&str>> = self
            .themes
            .iter()
            .map(|t| t.exemplars.iter().map(|e| e.1.as_str()).collect())
            .collect();
        let l = labels(&refs, &central, 3);
        for (t, l) in self.themes.iter_mut().zip(l) {
            t.label = l.phrase;
            t.keywords = l.keywords;
            t.label_by_language = l.by_language;
        }
    }

    /// The label of theme `id` for a text in `language` (`en`, `ru`): the
    /// analyst's when renamed, else the theme's phrase in that language
    /// when it has one, else its main label.
    pub fn label_in(&self, id: u32, language: &str) -> Option<&str> {
        self.theme(id).map(|t| match &t.curated_label {
            Some(l) => l.as_str(),
            None => t
                .label_by_language
                .get(language)
                .map_or(t.label.as_str(), String::as_str),
        })
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
    /// `themes/state.json` as this stage last wrote it (its stamp): when
    /// it differs at a commit, an instance beside this one saved its themes.
    state_at: Option<String>,
    /// Who claims id blocks (for the claim files).
    claimant: String,
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
        let mut model = store.load_model(cfg, dim).map_err(store_failed)?;
        // Instances may share the root: new ids come from claimed blocks only.
        model.add_ids(IdPool::default());
        Ok(Self {
            model,
            store,
            curation_at,
            state_at: None,
            claimant: super::ids::claimant("verbatim job"),
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
        // The batch's comments in a language the model reads, assigned
        // together (see `ThemeModel::assign_batch`): with themes per
        // mention each mention that has a vector is an item of its target,
        // else the whole comment is one.
        let per_mention = self.model.config().unit == crate::config::ThemeUnit::Mention;
        // (comment, mention index or None for the whole comment)
        let mut slots: Vec<(usize, Option<usize>)> = Vec::new();
        for (i, c) in batch.comments.iter().enumerate() {
            let read = c.nlp.embedding.is_some()
                && c.nlp
                    .language
                    .is_some_and(|l| self.languages.iter().any(|x| x == l));
            if !read {
                continue;
            }
            let mentions: Vec<usize> = c
                .nlp
                .aspects
                .iter()
                .flatten()
                .enumerate()
                .filter(|(_, a)| per_mention && a.vector.is_some())
                .map(|(k, _)| k)
                .collect();
            if mentions.is_empty() {
                slots.push((i, None));
            } else {
                slots.extend(mentions.into_iter().map(|k| (i, Some(k))));
            }
        }
        let items: Vec<ThemeInput<'_>> = slots
            .iter()
            .filter_map(|&(i, k)| {
                let c = &batch.comments[i];
                Some(match k {
                    None => ThemeInput {
                        target: None,
                        vector: c.nlp.embedding.as_deref()?,
                        text: c.text.as_str(),
                        source: None,
                    },
                    Some(k) => {
                        let a = c.nlp.aspects.as_ref()?.get(k)?;
                        ThemeInput {
                            target: Some(&*a.target),
                            vector: a.vector.as_deref()?,
                            text: a.text.as_str(),
                            source: Some(crate::comment::stable_hash(c.id.as_bytes())),
                        }
                    }
                })
            })
            .collect();
        // Ids for every theme the batch could form, claimed first so that
        // no instance beside this one mints the same (see `super::ids`).
        let needed = self.model.ids_needed(items.len());
        if self.model.ids_left() < needed {
            let pool = super::ids::claim(
                &self.store,
                needed - self.model.ids_left(),
                self.model.next_id(),
                &self.claimant,
            )
            .map_err(store_failed)?;
            self.model.add_ids(pool);
        }
        // The labels as of the end of this batch (`assign_batch` makes them
        // once): what a row is written with depends on the rows up to its
        // own batch, not on when files were committed.
        let assigned = self.model.assign_batch(&items);
        self.labels.clear();
        for (&(i, k), a) in slots.iter().zip(assigned) {
            let theme = a.theme.map(|id| {
                let label = self
                    .labels
                    .entry(id)
                    .or_insert_with(|| Arc::from(self.model.label(id).unwrap_or("")))
                    .clone();
                (id, label, a.similarity)
            });
            let n = &mut batch.comments[i].nlp;
            match k {
                None => n.theme = theme,
                Some(k) => {
                    if let Some(m) = n.aspects.as_mut().and_then(|x| x.get_mut(k)) {
                        m.theme = theme;
                    }
                }
            }
        }
        for &(i, k) in &slots {
            if k.is_some() {
                let n = &mut batch.comments[i].nlp;
                n.theme = primary_theme(n.aspects.as_deref().unwrap_or_default());
            }
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
        let mut changed = false;
        if newer || curation_at != self.curation_at {
            self.store.refresh(&mut self.model).map_err(store_failed)?;
            self.curation_at = curation_at;
            changed = true;
        }
        // Another instance on this root saved its themes since we did?
        let state_at = self.store.state_stamp().map_err(store_failed)?;
        if state_at.is_some() && state_at != self.state_at {
            if let Some(other) = self.store.read_state().map_err(store_failed)? {
                let added = self.model.absorb(&other);
                if added > 0 {
                    self.model
                        .apply(&self.store.curation().map_err(store_failed)?);
                    tracing::debug!(added, "themes: took in themes another instance formed");
                    changed = true;
                }
            }
        }
        if changed {
            self.model.relabel();
            self.labels.clear();
        }
        self.store.save_state(&self.model).map_err(store_failed)?;
        self.state_at = self.store.state_stamp().map_err(store_failed)?;
        self.store.write_snapshot(&self.model).map_err(store_failed)
    }

    fn on_stop(&mut self) -> Result<(), OperatorError> {
        // The ids this instance claimed and did not use go back, so a clean
        // restart goes on numbering where it stopped.
        let pool = self.model.take_ids();
        super::ids::release(&self.store, pool).map_err(store_failed)
    }
}

/// A comment's primary theme: its strongest negative mention's (highest
/// confidence), else its strongest mention's, among mentions with a theme.
pub fn primary_theme(mentions: &[crate::comment::Aspect]) -> Option<(u32, Arc<str>, f32)> {
    use crate::comment::Polarity;
    mentions
        .iter()
        .filter(|m| m.theme.is_some())
        .max_by(|a, b| {
            (a.polarity == Polarity::Negative)
                .cmp(&(b.polarity == Polarity::Negative))
                .then(a.confidence.total_cmp(&b.confidence))
                .then(b.start.cmp(&a.start))
        })
        .and_then(|m| m.theme.clone())
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

    /// The unit vector along axis `k`.
    fn axis(dim: usize, k: usize) -> Vec<f32> {
        let mut v = vec![0f32; dim];
        v[k] = 1.0;
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
        let basis = |k: usize| axis(dim, k);
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

    /// A batch of English comments with these vectors and texts.
    fn comments(partition: i32, rows: &[(Vec<f32>, &str)]) -> CommentBatch {
        let at = chrono::Utc::now();
        let comments = rows
            .iter()
            .enumerate()
            .map(|(i, (v, t))| {
                let coords = crate::comment::SourceCoords {
                    topic: "fb".into(),
                    partition,
                    offset: i as i64,
                    kafka_timestamp: None,
                };
                let mut c = crate::comment::Comment::new(
                    coords,
                    format!("p{partition}-{i}"),
                    t.to_string(),
                    at,
                    at,
                );
                c.nlp.embedding = Some(v.clone());
                c.nlp.language = Some("en");
                c
            })
            .collect();
        CommentBatch {
            comments,
            ..Default::default()
        }
    }

    /// Two instances of one consumer group on one output root: each forms
    /// themes from its own partitions. No id means two things, each takes
    /// in the other's themes at its commit (so a comment about the other's
    /// subject joins the other's theme), and the state and the snapshot
    /// hold every theme either wrote.
    #[test]
    fn instances_sharing_a_root_never_mint_one_id_twice() {
        let dim = 32;
        let basis = |k: usize| axis(dim, k);
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let out = crate::sink::store::OutputStore::local(dir.path()).unwrap();
            ThemeOperator::open(&cfg(), ThemeStore::new(out), dim, &["en".into()]).unwrap()
        };
        let (mut a, mut b) = (open(), open());
        let rows = |k: usize, seed: u32, text: &'static str| -> Vec<(Vec<f32>, &str)> {
            (0..8)
                .map(|i| (near(&basis(k), seed + i, 0.1), text))
                .collect()
        };
        let written = |batch: &CommentBatch| -> Vec<u32> {
            batch
                .comments
                .iter()
                .filter_map(|c| c.nlp.theme.as_ref().map(|t| t.0))
                .collect()
        };
        // Instance a: wifi (basis 0); instance b: parcels (basis 1), then
        // refunds (basis 2), all before either has committed.
        let mut wifi = comments(0, &rows(0, 100, "wifi keeps dropping"));
        a.process_batch(&mut wifi).unwrap();
        let mut parcel = comments(1, &rows(1, 200, "parcel never came"));
        b.process_batch(&mut parcel).unwrap();
        let mut refund = comments(1, &rows(2, 300, "refund still missing"));
        b.process_batch(&mut refund).unwrap();
        let (wifi_id, parcel_id, refund_id) =
            (written(&wifi)[0], written(&parcel)[0], written(&refund)[0]);
        assert!(written(&wifi).iter().all(|&t| t == wifi_id));
        assert_ne!(wifi_id, parcel_id, "two instances minted one id");
        assert_ne!(wifi_id, refund_id, "two instances minted one id");
        // Both commit (b last, so its state.json is the one on disk), then
        // a commits again: it reads b's state.
        a.before_commit().unwrap();
        b.before_commit().unwrap();
        a.before_commit().unwrap();
        let ids = |op: &ThemeOperator| -> Vec<u32> {
            let mut v: Vec<u32> = op.model().themes().iter().map(|t| t.id).collect();
            v.sort_unstable();
            v
        };
        let mut all = vec![wifi_id, parcel_id, refund_id];
        all.sort_unstable();
        assert_eq!(ids(&a), all, "a took in b's themes");
        // b reads a's state at its next commit.
        b.before_commit().unwrap();
        assert_eq!(ids(&b), all, "b took in a's themes");
        let store = ThemeStore::new(crate::sink::store::OutputStore::local(dir.path()).unwrap());
        let saved = store.read_state().unwrap().unwrap();
        assert_eq!(saved.themes().len(), 3, "state.json holds every theme");
        let snap = super::super::store::snapshot_themes(&store.snapshot().unwrap());
        for id in &all {
            assert!(
                snap.contains_key(&(*id as i32)),
                "snapshot lacks theme {id}"
            );
        }
        // A parcel comment arriving at a joins b's parcel theme.
        let mut late = comments(0, &[(near(&basis(1), 999, 0.1), "parcel lost")]);
        a.process_batch(&mut late).unwrap();
        assert_eq!(written(&late), [parcel_id]);
        // A restarted instance claims a block of its own: its new themes
        // take ids neither instance holds.
        let mut c = open();
        let mut bills = comments(2, &rows(3, 400, "bill is wrong"));
        c.process_batch(&mut bills).unwrap();
        let bill_id = written(&bills)[0];
        assert!(!all.contains(&bill_id), "{bill_id} reused");
        let claims = std::fs::read_dir(dir.path().join(super::super::ids::CLAIMS))
            .unwrap()
            .count();
        assert_eq!(claims, 3, "one block per instance");
    }

    /// A job taking a refit's version over keeps the theme it formed after
    /// the refit read the root, and drops the ones the refit re-clustered.
    #[test]
    fn a_new_version_keeps_the_themes_formed_after_the_refit_read() {
        let dim = 8;
        let theme = |id: u32, k: usize| {
            let mut t = Theme::empty(id, dim);
            t.sum[k] = 1.0;
            t.count = 1;
            t
        };
        // The job knew 1 and 2 when the refit read; it formed 3 since.
        let mut job = ThemeModel::from_refit(
            cfg(),
            dim,
            vec![theme(1, 0), theme(2, 1), theme(3, 2)],
            4,
            0,
            Default::default(),
        );
        // The refit kept 1 and retired 2.
        let mut v1 =
            ThemeModel::from_refit(cfg(), dim, vec![theme(1, 0)], 4, 1, Default::default());
        v1.set_covers(vec![2, 1, 1]);
        let back = ThemeModel::from_json(&v1.to_json().unwrap()).unwrap();
        job.adopt(back);
        let ids: Vec<u32> = job.themes().iter().map(|t| t.id).collect();
        assert_eq!(ids, [1, 3]);
        let mut v = vec![0f32; dim];
        v[2] = 1.0;
        assert_eq!(job.assign(&v, "x").theme, Some(3), "its centroid is back");
    }

    /// A state saved under another model version is not taken in: the
    /// newer version re-clustered what it held.
    #[test]
    fn themes_of_another_version_are_not_taken_in() {
        let dim = 8;
        let mut t = Theme::empty(7, dim);
        t.sum[0] = 1.0;
        t.count = 1;
        let old = ThemeModel::from_refit(cfg(), dim, vec![t.clone()], 8, 1, Default::default());
        let mut m = ThemeModel::from_refit(cfg(), dim, Vec::new(), 8, 2, Default::default());
        assert_eq!(m.absorb(&old), 0);
        let same = ThemeModel::from_refit(cfg(), dim, vec![t], 8, 2, Default::default());
        let mut merged_away = m.clone();
        merged_away.aliases.insert(7, 3);
        assert_eq!(merged_away.absorb(&same), 0, "a merged-away id stays away");
        assert_eq!(m.absorb(&same), 1);
        assert_eq!(m.absorb(&same), 0, "a theme it knows is not taken twice");
        assert_eq!(
            m.assign(
                &{
                    let mut v = vec![0f32; dim];
                    v[0] = 1.0;
                    v
                },
                "x"
            )
            .theme,
            Some(7)
        );
    }

    #[test]
    fn a_batch_gets_the_theme_its_own_comments_formed() {
        let dim = 32;
        let basis = |k: usize| axis(dim, k);
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
                let refs: Vec<ThemeInput<'_>> =
                    new.iter().map(|(v, t)| ThemeInput::comment(v, t)).collect();
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
    fn one_comments_sentences_never_form_a_theme_alone() {
        let dim = 32;
        let mut a = vec![0f32; dim];
        a[1] = 1.0;
        let vs: Vec<Vec<f32>> = (0..8).map(|i| near(&a, 700 + i, 0.1)).collect();
        let run = |sources: &dyn Fn(usize) -> u64| {
            let mut m = ThemeModel::new(cfg(), dim);
            let items: Vec<ThemeInput<'_>> = vs
                .iter()
                .enumerate()
                .map(|(i, v)| ThemeInput {
                    target: Some("product"),
                    vector: v,
                    text: "glass in my salad",
                    source: Some(sources(i)),
                })
                .collect();
            m.assign_batch(&items);
            m
        };
        // Eight close clauses of one comment: no theme, all still waiting.
        let one = run(&|_| 7);
        assert!(one.themes().is_empty(), "{:?}", one.themes());
        assert_eq!(one.buffer.len(), 8);
        // Two comments are fewer than min_theme_size (3) too; three are not.
        assert!(run(&|i| (i % 2) as u64).themes().is_empty());
        let three = run(&|i| (i % 3) as u64);
        assert_eq!(three.themes().len(), 1);
        assert_eq!(three.themes()[0].count, 8);
        // Saved and loaded, the buffer keeps its sources.
        let back = ThemeModel::from_json(&one.to_json().unwrap()).unwrap();
        assert_eq!(back, one);
    }

    #[test]
    fn mentions_of_different_targets_never_share_a_theme() {
        let dim = 32;
        let mut a = vec![0f32; dim];
        a[0] = 1.0;
        // The same subject, said of staff and of product: two themes.
        let mut m = ThemeModel::new(cfg(), dim);
        let vs: Vec<Vec<f32>> = (0..16).map(|i| near(&a, 400 + i, 0.1)).collect();
        let items: Vec<ThemeInput<'_>> = vs
            .iter()
            .enumerate()
            .map(|(i, v)| ThemeInput {
                target: Some(if i % 2 == 0 { "staff" } else { "product" }),
                vector: v,
                text: "slow to answer",
                source: None,
            })
            .collect();
        let got = m.assign_batch(&items);
        assert_eq!(m.themes().len(), 2, "{:?}", m.themes());
        let target_of = |id: Option<u32>| m.theme(id.unwrap()).unwrap().target.clone();
        for (x, a) in items.iter().zip(&got) {
            assert_eq!(target_of(a.theme).as_deref(), x.target);
        }
        // A whole comment about it finds no theme of its own yet.
        assert_eq!(m.assign(&near(&a, 999, 0.1), "slow").theme, None);
        // An analyst cannot merge across targets.
        let (s, p) = (m.themes()[0].id, m.themes()[1].id);
        let e = m.merge(s, p).unwrap_err();
        assert!(e.contains("one target"), "{e}");
        // The state keeps the targets.
        let back = ThemeModel::from_json(&m.to_json().unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_state_saved_before_targets_still_loads() {
        let dim = 4;
        let mut m = ThemeModel::new(cfg(), dim);
        m.assign(&unit(1, dim), "first words");
        let mut json: serde_json::Value = serde_json::from_slice(&m.to_json().unwrap()).unwrap();
        // Buffered items were `[vector, text]` pairs.
        let v = json["buffer"][0]["v"].clone();
        json["buffer"][0] = serde_json::json!([v, "first words"]);
        let back = ThemeModel::from_json(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn the_primary_theme_is_the_strongest_complaint() {
        use crate::comment::{Aspect, Polarity};
        let mention = |p: Polarity, confidence: f32, id: u32| Aspect {
            target: "staff".into(),
            polarity: p,
            confidence,
            start: id,
            end: id + 1,
            text: String::new(),
            vector: None,
            theme: Some((id, Arc::from("t"), 0.9)),
        };
        let praise = mention(Polarity::Positive, 0.99, 1);
        let weak = mention(Polarity::Negative, 0.6, 2);
        let strong = mention(Polarity::Negative, 0.8, 3);
        let id = |ms: &[Aspect]| primary_theme(ms).map(|t| t.0);
        assert_eq!(id(&[praise.clone(), weak.clone(), strong]), Some(3));
        assert_eq!(id(&[praise.clone(), weak]), Some(2));
        assert_eq!(id(std::slice::from_ref(&praise)), Some(1));
        let mut none = praise;
        none.theme = None;
        assert_eq!(id(&[none]), None);
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
