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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::encoder::normalize;
use super::theme_labels::{labels, TermCounts};
use super::{Operator, OperatorError};
use crate::batch::CommentBatch;
use crate::config::ThemesConfig;

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
        }
    }

    /// The themes, in creation order.
    pub fn themes(&self) -> &[Theme] {
        &self.themes
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
            .map(|c| c.iter().zip(v).map(|(a, b)| a * b).sum::<f32>())
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
            if sim >= self.cfg.join_similarity {
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

    /// Clusters the novelty buffer into new themes (or into existing ones
    /// they turn out to be close to); what does not form a cluster stays.
    pub fn cluster_buffer(&mut self) {
        self.since_cluster = 0;
        let n = self.buffer.len();
        if n < self.cfg.min_theme_size.max(2) {
            return;
        }
        let items: Vec<&Vec<f32>> = self.buffer.iter().map(|(v, _)| v).collect();
        let mut condensed = Vec::with_capacity(n * (n - 1) / 2);
        for i in 0..n {
            for j in i + 1..n {
                let dot: f32 = items[i].iter().zip(items[j]).map(|(a, b)| a * b).sum();
                condensed.push((1.0 - dot).max(0.0));
            }
        }
        let dendro = kodama::linkage(&mut condensed, n, kodama::Method::Average);
        // Cut: union the merges below the distance (steps come in order).
        let mut parent: Vec<usize> = (0..2 * n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for (s, step) in dendro.steps().iter().enumerate() {
            if step.dissimilarity > self.cfg.cluster_distance {
                break;
            }
            let new = n + s;
            let a = find(&mut parent, step.cluster1);
            let b = find(&mut parent, step.cluster2);
            parent[a] = new;
            parent[b] = new;
        }
        let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for i in 0..n {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
        let mut taken = vec![false; n];
        let mut changed = false;
        let min_size = self.cfg.min_theme_size;
        for members in groups.values().filter(|m| m.len() >= min_size) {
            let mut sum = vec![0f32; self.dim];
            for &i in members {
                sum.iter_mut()
                    .zip(&self.buffer[i].0)
                    .for_each(|(s, x)| *s += x);
            }
            let mut c = sum.clone();
            normalize(&mut c);
            let k = match self.nearest(&c) {
                Some((k, sim)) if sim >= self.cfg.join_similarity => k,
                _ => {
                    self.themes.push(Theme {
                        id: self.next_id,
                        label: String::new(),
                        count: 0,
                        sum: vec![0.0; self.dim],
                        terms: TermCounts::default(),
                        exemplars: Vec::new(),
                    });
                    self.next_id += 1;
                    self.centroids.extend(&c);
                    self.themes.len() - 1
                }
            };
            for &i in members {
                let (v, text) = self.buffer[i].clone();
                let sim: f32 = v.iter().zip(&c).map(|(a, b)| a * b).sum();
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

    /// The label of theme `id`.
    pub fn label(&self, id: u32) -> Option<&str> {
        self.themes
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.label.as_str())
    }

    /// Saves the state to `path` atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            crate::sink::files::fsync_dir(dir)?;
        }
        Ok(())
    }

    /// Loads a saved state.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let mut m: Self = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        m.rebuild_centroids();
        Ok(m)
    }
}

/// The stage: assigns every embedded comment in a language the model reads.
pub struct ThemeOperator {
    model: ThemeModel,
    state: PathBuf,
    languages: Vec<String>,
    labels: std::collections::HashMap<u32, Arc<str>>,
}

impl ThemeOperator {
    /// A stage whose state lives in `<root>/themes/state.json` (loaded when
    /// present, so ids survive restarts).
    pub fn open(
        cfg: &ThemesConfig,
        root: &Path,
        dim: usize,
        languages: &[String],
    ) -> Result<Self, OperatorError> {
        let state = root.join("themes").join("state.json");
        let model = if state.is_file() {
            ThemeModel::load(&state).map_err(|e| OperatorError::Failed {
                operator: "themes".into(),
                message: format!(
                    "{}: {e}. Fix: restore it, or move it away to start themes afresh",
                    state.display()
                ),
            })?
        } else {
            ThemeModel::new(cfg.clone(), dim)
        };
        Ok(Self {
            model,
            state,
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
        for c in &mut batch.comments {
            let readable = c
                .nlp
                .language
                .is_some_and(|l| self.languages.iter().any(|x| x == l));
            let Some(v) = c.nlp.embedding.as_deref().filter(|_| readable) else {
                continue;
            };
            let a = self.model.assign(v, &c.text);
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
        self.model.relabel();
        self.labels.clear();
        self.model
            .save(&self.state)
            .map_err(|e| OperatorError::Failed {
                operator: "themes".into(),
                message: format!("saving {}: {e}", self.state.display()),
            })
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
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("themes/state.json");
        m.save(&p).unwrap();
        let mut back = ThemeModel::load(&p).unwrap();
        assert_eq!(back.assign(&a, "refund missing").theme, id);
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
