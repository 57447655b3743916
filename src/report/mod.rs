//! `verbatim report`: what customers say, who is really to blame, who needs a
//! call back, read from the Parquet the job wrote and written as one offline
//! HTML page (inline SVG, no network), Markdown or JSON.
//!
//! - this file: reading `comments/` and computing every section;
//! - [`render`]: HTML and Markdown;
//! - [`charts`]: the inline SVG charts.
//!
//! Every rate comes with its count and a 95% Wilson interval; staff and
//! locations with fewer than `min_comments` analysed comments are shown as
//! "not enough data" and never ranked. The README lists the DuckDB query
//! behind each section.

pub mod answered;
pub mod charts;
pub mod render;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::sink::read::{read_comments, read_mentions, MentionRow, ReadError, Row};
use crate::themes::assignments::Assignments;
use crate::themes::daily::spikes;
use crate::themes::store::apply_curation;

/// Errors of `verbatim report`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The committed comments could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One self-contained HTML page.
    Html,
    /// Markdown.
    Markdown,
    /// One JSON object.
    Json,
}

/// A rate with its count and 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Matching comments.
    pub k: u64,
    /// Comments considered.
    pub n: u64,
    /// `k / n` (0 when `n` is 0).
    pub rate: f64,
    /// Lower bound of the 95% Wilson score interval.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

impl Rate {
    /// `k` of `n`, with the Wilson score interval
    /// `(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`.
    pub fn new(k: u64, n: u64) -> Self {
        if n == 0 {
            return Self {
                k,
                n,
                rate: 0.0,
                low: 0.0,
                high: 1.0,
            };
        }
        let (kf, nf, z2) = (k as f64, n as f64, Z95 * Z95);
        let p = kf / nf;
        let centre = p + z2 / (2.0 * nf);
        let half = Z95 * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
        let denom = 1.0 + z2 / nf;
        Self {
            k,
            n,
            rate: p,
            low: ((centre - half) / denom).max(0.0),
            high: ((centre + half) / denom).min(1.0),
        }
    }
}

/// Section 1.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Comments in the window.
    pub comments: u64,
    /// First and last event day.
    pub first_day: Option<NaiveDate>,
    /// Last event day.
    pub last_day: Option<NaiveDate>,
    /// Comments per detected language (`unknown` when null).
    pub languages: Vec<(String, u64)>,
    /// Comments per channel (`unknown` when null).
    pub channels: Vec<(String, u64)>,
    /// negative / neutral / positive / not analysed.
    pub sentiment: Vec<(String, u64)>,
    /// The score distribution.
    pub scores: Scores,
}

/// The score distribution (never a bare mean).
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    /// Comments with a score.
    pub n: u64,
    /// Count per whole score, lowest first.
    pub histogram: Vec<(String, u64)>,
    /// Mean score (shown beside the histogram, never alone).
    pub mean: Option<f64>,
    /// Share of scores at the two ends of the observed scale.
    pub extremes_share: Option<f64>,
    /// Set when responses are skewed to the extremes.
    pub skew_note: Option<String>,
}

/// One theme in section 2.
#[derive(Debug, Clone, Serialize)]
pub struct ThemeRow {
    /// Theme id.
    pub id: i32,
    /// Label.
    pub label: String,
    /// Keywords beside the label (from `themes/themes.parquet`).
    pub keywords: Vec<String>,
    /// With themes per mention, the target its clauses are about
    /// (`product`, `staff`...); `None`: whole comments.
    pub target: Option<String>,
    /// Comments in the window.
    pub count: u64,
    /// Comments in the last 7 days of the window.
    pub last_7_days: u64,
    /// Comments in the 7 days before those.
    pub previous_7_days: u64,
    /// Count per day over the window, oldest first.
    pub daily: Vec<u64>,
    /// negative / neutral / positive counts.
    pub sentiment: [u64; 3],
    /// Share of the theme's comments with a staff / product / process complaint.
    pub complaint_share: ComplaintShare,
    /// Up to three example comments.
    pub examples: Vec<String>,
    /// Days whose count was well above the theme's trailing baseline.
    pub spikes: Vec<NaiveDate>,
    /// How much the mean score would change without this theme's comments
    /// (positive: the theme pulls the mean down); `None` without scores.
    pub impact: Option<f64>,
}

/// Complaint shares of a group of comments.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ComplaintShare {
    /// Negative about staff.
    pub staff: f64,
    /// Negative about the product.
    pub product: f64,
    /// Negative about a process.
    pub process: f64,
}

/// Section 2.
#[derive(Debug, Clone, Serialize)]
pub struct Themes {
    /// Largest themes.
    pub top: Vec<ThemeRow>,
    /// Fastest growing: last 7 days against the 7 before (at least 3 comments lately).
    pub growing: Vec<ThemeRow>,
    /// Comments with no theme.
    pub unthemed: u64,
}

/// One staff member or location in the scorecard.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow {
    /// Staff id or location.
    pub key: String,
    /// Analysed comments attributed to it.
    pub comments: u64,
    /// Negative comments, as scored today (whole-comment sentiment).
    pub negative: Rate,
    /// Negatives aimed at staff only (`blames_staff`).
    pub corrected: Rate,
    /// Rank by corrected rate (1 = fewest staff-aimed negatives); `None`
    /// when there are too few comments to rank.
    pub rank: Option<usize>,
    /// The staff themes its positive staff mentions fall in, most first
    /// (up to three): what customers praise ("engineer explains clearly").
    pub praised_for: Vec<ThemeCount>,
    /// The staff themes of its negative staff mentions, most first (up to
    /// three): what the staff-aimed negatives are about ("rude on the
    /// phone").
    pub criticised_for: Vec<ThemeCount>,
}

/// A staff theme and how many of one person's (or place's) staff mentions
/// fall in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThemeCount {
    /// Theme id (`themes/themes.parquet`).
    pub id: i32,
    /// Its label today.
    pub label: String,
    /// Staff mentions of that polarity in it.
    pub mentions: u64,
    /// The latest of those clauses, as the customer wrote it: what the
    /// label stands for here (a theme can hold praise and complaint about
    /// one subject, so "criticised for: staff" needs its words).
    pub example: String,
}

/// Section 3.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecard {
    /// Fewest analysed comments to be ranked.
    pub min_comments: u64,
    /// Whether any staff mention carries a theme (themes per mention,
    /// `themes.unit = "mention"`); without, `praised_for` and
    /// `criticised_for` stay empty.
    pub staff_themes: bool,
    /// Per staff id.
    pub staff: Vec<ScoreRow>,
    /// Per location.
    pub locations: Vec<ScoreRow>,
}

/// A rate of one group (solicitation by location or staff).
#[derive(Debug, Clone, Serialize)]
pub struct GroupRate {
    /// Location or staff id.
    pub key: String,
    /// The rate.
    pub rate: Rate,
}

/// An example comment with the words that raised its flag.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// Comment id.
    pub id: String,
    /// Staff id.
    pub staff_id: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// The evidence span.
    pub evidence: String,
    /// The comment.
    pub text: String,
}

/// Section 4.
#[derive(Debug, Clone, Serialize)]
pub struct Solicitation {
    /// All comments.
    pub overall: Rate,
    /// Per location.
    pub by_location: Vec<GroupRate>,
    /// Per staff id.
    pub by_staff: Vec<GroupRate>,
    /// Up to five examples, newest first.
    pub examples: Vec<Example>,
}

/// One comment in the follow-up queue.
#[derive(Debug, Clone, Serialize)]
pub struct FollowUp {
    /// Comment id.
    pub id: String,
    /// 1 urgent (safety), 2 high (contact + repeat), 3 normal.
    pub priority: u8,
    /// The follow-up flags raised.
    pub flags: Vec<String>,
    /// Evidence of the first of them.
    pub evidence: String,
    /// When the customer wrote it.
    pub event_time: DateTime<Utc>,
    /// Hours since then, at report time.
    pub age_hours: i64,
    /// Staff id.
    pub staff_id: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// The comment.
    pub text: String,
}

/// Section 6.
#[derive(Debug, Clone, Serialize)]
pub struct Fatigue {
    /// Share of all comments.
    pub overall: Rate,
    /// Per day: (day, comments complaining, comments).
    pub daily: Vec<(NaiveDate, u64, u64)>,
    /// Up to three examples.
    pub examples: Vec<Example>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// The output root read.
    pub output_root: String,
    /// First day included (`--since`).
    pub since: Option<NaiveDate>,
    /// Last day included (`--until`).
    pub until: Option<NaiveDate>,
    /// 1. Overview.
    pub overview: Overview,
    /// 2. Themes.
    pub themes: Themes,
    /// 3. Fair staff scorecard.
    pub scorecard: Scorecard,
    /// 4. Score solicitation.
    pub solicitation: Solicitation,
    /// 5. Follow-up queue, most urgent and newest first.
    pub follow_up: Vec<FollowUp>,
    /// 6. Survey fatigue.
    pub fatigue: Fatigue,
    /// 7. Did we answer? (the queue against `responses/` and the SLA).
    pub answered: answered::Answered,
}

/// Builds a [`Report`] from an output root.
#[derive(Debug, Clone)]
pub struct ReportBuilder {
    root: PathBuf,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
    min_comments: u64,
    now: DateTime<Utc>,
    sla: crate::followup::status::Sla,
    language: Option<String>,
}

impl ReportBuilder {
    /// A report over everything under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            since: None,
            until: None,
            min_comments: 10,
            now: Utc::now(),
            sla: crate::followup::status::Sla(
                crate::config::SlaConfig::default()
                    .spans()
                    .unwrap_or_else(|_| unreachable!("the default SLAs parse")),
            ),
            language: None,
        }
    }

    /// Show theme labels in this language (`en`, `ru`) where a theme has
    /// one in it; otherwise (and by default) each theme's main label, in the
    /// language most of its texts use.
    pub fn language(mut self, language: Option<String>) -> Self {
        self.language = language;
        self
    }

    /// The SLA per priority that "Did we answer?" applies (default: the
    /// default `[actions.sla]`).
    pub fn sla(mut self, sla: crate::followup::status::Sla) -> Self {
        self.sla = sla;
        self
    }

    /// Only comments written on or after this day (UTC).
    pub fn since(mut self, d: Option<NaiveDate>) -> Self {
        self.since = d;
        self
    }

    /// Only comments written on or before this day (UTC).
    pub fn until(mut self, d: Option<NaiveDate>) -> Self {
        self.until = d;
        self
    }

    /// Fewest analysed comments a staff member or location needs to be ranked.
    pub fn min_comments(mut self, n: u64) -> Self {
        self.min_comments = n.max(1);
        self
    }

    /// The time ages are measured to (tests pin it).
    pub fn now(mut self, t: DateTime<Utc>) -> Self {
        self.now = t;
        self
    }

    /// Reads the comments, the queue and its responses, and computes every
    /// section.
    pub fn build(&self) -> Result<Report, ReportError> {
        let mut rows = read_comments(&self.root, self.since, self.until)?;
        let mut mentions = read_mentions(&self.root, self.since, self.until)?;
        // The newest refit's themes for the rows it regrouped, then the
        // snapshot's labels and merges.
        if let Some(a) = Assignments::read_latest(&self.root)? {
            a.apply(&mut rows, &mut mentions);
        }
        let snapshot = std::fs::read(self.root.join(crate::themes::store::SNAPSHOT)).ok();
        apply_curation(
            snapshot.as_deref(),
            self.language.as_deref(),
            rows.iter_mut()
                .map(|r| &mut r.theme)
                .chain(mentions.iter_mut().map(|m| &mut m.theme)),
        );
        let status = crate::followup::table::status_of(&self.root, &self.sla, self.now)?;
        let mut report = self.compute_with(&rows, &mentions, &status);
        if let Some(snapshot) = snapshot.as_deref() {
            let known = crate::themes::store::snapshot_themes(snapshot);
            for t in report
                .themes
                .top
                .iter_mut()
                .chain(&mut report.themes.growing)
            {
                if let Some(k) = known.get(&t.id) {
                    t.keywords.clone_from(&k.keywords);
                    t.target.clone_from(&k.target);
                }
            }
        }
        Ok(report)
    }

    /// Computes every section from comments already read, with no mentions
    /// and no queue.
    pub fn compute(&self, rows: &[Row]) -> Report {
        let none = crate::followup::status::StatusReport {
            as_of: self.now,
            ..Default::default()
        };
        self.compute_with(rows, &[], &none)
    }

    /// Computes every section from comments, their mentions (the
    /// scorecard's staff themes) and the queue's statuses.
    pub fn compute_with(
        &self,
        rows: &[Row],
        mentions: &[MentionRow],
        status: &crate::followup::status::StatusReport,
    ) -> Report {
        let hours = self.sla.0.map(|d| d.num_minutes() as f64 / 60.0);
        Report {
            generated_at: self.now,
            output_root: self.root.display().to_string(),
            since: self.since,
            until: self.until,
            overview: overview(rows),
            themes: themes(rows, mentions),
            scorecard: Scorecard {
                min_comments: self.min_comments,
                staff_themes: mentions
                    .iter()
                    .any(|m| m.target == "staff" && m.theme.is_some()),
                staff: with_staff_themes(
                    scorecard(rows, |r| r.staff_id.as_deref(), self.min_comments),
                    mentions,
                    |m| m.staff_id.as_deref(),
                ),
                locations: with_staff_themes(
                    scorecard(rows, |r| r.location.as_deref(), self.min_comments),
                    mentions,
                    |m| m.location.as_deref(),
                ),
            },
            solicitation: solicitation(rows),
            follow_up: follow_up(rows, self.now),
            fatigue: fatigue(rows),
            answered: answered::answered(status, rows, hours),
        }
    }
}

fn counts<'a>(it: impl Iterator<Item = Option<&'a str>>) -> Vec<(String, u64)> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for k in it {
        *m.entry(k.unwrap_or("unknown").to_string()).or_default() += 1;
    }
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn overview(rows: &[Row]) -> Overview {
    let mut sentiment = [0u64; 4];
    for r in rows {
        let i = match r.sentiment.as_deref() {
            Some("negative") => 0,
            Some("neutral") => 1,
            Some("positive") => 2,
            _ => 3,
        };
        sentiment[i] += 1;
    }
    let days = rows.iter().map(|r| r.event_time.date_naive());
    Overview {
        comments: rows.len() as u64,
        first_day: days.clone().min(),
        last_day: days.max(),
        languages: counts(rows.iter().map(|r| r.language.as_deref())),
        channels: counts(rows.iter().map(|r| r.channel.as_deref())),
        sentiment: ["negative", "neutral", "positive", "not analysed"]
            .iter()
            .zip(sentiment)
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        scores: scores(rows),
    }
}

fn scores(rows: &[Row]) -> Scores {
    let vals: Vec<f64> = rows.iter().filter_map(|r| r.score).collect();
    let n = vals.len() as u64;
    if vals.is_empty() {
        return Scores {
            n,
            histogram: Vec::new(),
            mean: None,
            extremes_share: None,
            skew_note: None,
        };
    }
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min).floor() as i64;
    let hi = vals
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil() as i64;
    // Common scales: 0-10 (NPS) when anything is 0 or above 5, else 1-5.
    let (lo, hi) = if lo >= 1 && hi <= 5 {
        (1, 5)
    } else {
        (lo.min(0), hi.max(10))
    };
    let mut histogram: Vec<(String, u64)> = (lo..=hi).map(|s| (s.to_string(), 0)).collect();
    for v in &vals {
        let i = (v.round() as i64 - lo).clamp(0, hi - lo) as usize;
        histogram[i].1 += 1;
    }
    let extremes = vals
        .iter()
        .filter(|v| v.round() as i64 <= lo || v.round() as i64 >= hi)
        .count() as f64
        / n as f64;
    // Two ends of the scale hold 2 of its points; past 40% of answers there
    // the distribution is U-shaped and a mean describes nobody.
    let skew_note = (extremes >= 0.4).then(|| {
        format!(
            "{:.0}% of scores are at the ends of the scale ({lo} or {hi}): responses are skewed to the extremes, so read the distribution, not the mean",
            extremes * 100.0
        )
    });
    Scores {
        n,
        histogram,
        mean: Some(vals.iter().sum::<f64>() / n as f64),
        extremes_share: Some(extremes),
        skew_note,
    }
}

fn share(rows: &[&Row], f: impl Fn(&Row) -> bool) -> f64 {
    if rows.is_empty() {
        0.0
    } else {
        rows.iter().filter(|r| f(r)).count() as f64 / rows.len() as f64
    }
}

/// Up to three examples of a theme, newest first: with themes per mention,
/// the clauses of its `members` that the theme holds (`clauses`: its
/// mentions, oldest first), the words it stands for rather than the whole
/// comment around them; else the comments.
fn theme_examples(members: &[&Row], clauses: &[&MentionRow]) -> Vec<String> {
    let ids: std::collections::HashSet<&str> = members.iter().map(|r| r.id.as_str()).collect();
    let mut out: Vec<String> = Vec::new();
    for m in clauses.iter().rev() {
        let text = m.text.trim();
        if ids.contains(m.comment_id.as_str()) && !text.is_empty() && !out.iter().any(|c| c == text)
        {
            out.push(text.to_string());
            if out.len() == 3 {
                break;
            }
        }
    }
    if !out.is_empty() {
        return out;
    }
    members
        .iter()
        .rev()
        .take(3)
        .map(|r| r.text.clone())
        .collect()
}

fn themes(rows: &[Row], mentions: &[MentionRow]) -> Themes {
    let Some(last) = rows.iter().map(|r| r.event_time.date_naive()).max() else {
        return Themes {
            top: Vec::new(),
            growing: Vec::new(),
            unthemed: 0,
        };
    };
    let first = rows
        .iter()
        .map(|r| r.event_time.date_naive())
        .min()
        .unwrap_or(last);
    let span = (last - first).num_days().max(0) as usize + 1;
    let mut by: BTreeMap<i32, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        if let Some((id, _)) = &r.theme {
            by.entry(*id).or_default().push(r);
        }
    }
    let mut clauses: BTreeMap<i32, Vec<&MentionRow>> = BTreeMap::new();
    for m in mentions {
        if let Some((id, _)) = &m.theme {
            clauses.entry(*id).or_default().push(m);
        }
    }
    let (all_sum, all_n) = rows
        .iter()
        .filter_map(|r| r.score)
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    let mut all: Vec<ThemeRow> = by
        .into_iter()
        .map(|(id, members)| {
            let mut daily = vec![0u64; span];
            for r in &members {
                let d = (r.event_time.date_naive() - first).num_days() as usize;
                daily[d.min(span - 1)] += 1;
            }
            let recent = |from: i64, to: i64| {
                members
                    .iter()
                    .filter(|r| {
                        let age = (last - r.event_time.date_naive()).num_days();
                        age >= from && age < to
                    })
                    .count() as u64
            };
            let mut sentiment = [0u64; 3];
            for r in &members {
                match r.sentiment.as_deref() {
                    Some("negative") => sentiment[0] += 1,
                    Some("neutral") => sentiment[1] += 1,
                    Some("positive") => sentiment[2] += 1,
                    _ => {}
                }
            }
            let label = members
                .iter()
                .rev()
                .find_map(|r| r.theme.as_ref().map(|t| t.1.clone()))
                .unwrap_or_default();
            // Mean score without the theme's comments, minus the mean with them.
            let (own_sum, own_n) = members
                .iter()
                .filter_map(|r| r.score)
                .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
            let impact = (all_n > own_n)
                .then(|| (all_sum - own_sum) / (all_n - own_n) as f64 - all_sum / all_n as f64);
            ThemeRow {
                id,
                label,
                keywords: Vec::new(),
                target: None,
                count: members.len() as u64,
                last_7_days: recent(0, 7),
                previous_7_days: recent(7, 14),
                spikes: spikes(&daily, first),
                daily,
                sentiment,
                complaint_share: ComplaintShare {
                    staff: share(&members, |r| r.blames_staff),
                    product: share(&members, |r| r.blames_product),
                    process: share(&members, |r| r.blames_process),
                },
                examples: theme_examples(&members, clauses.get(&id).map_or(&[][..], Vec::as_slice)),
                impact,
            }
        })
        .collect();
    let unthemed = rows.iter().filter(|r| r.theme.is_none()).count() as u64;
    all.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
    let top: Vec<ThemeRow> = all.iter().take(10).cloned().collect();
    let growth = |t: &ThemeRow| (t.last_7_days as f64 + 1.0) / (t.previous_7_days as f64 + 1.0);
    let mut growing: Vec<ThemeRow> = all
        .into_iter()
        .filter(|t| t.last_7_days >= 3 && t.last_7_days > t.previous_7_days)
        .collect();
    growing.sort_by(|a, b| {
        growth(b)
            .total_cmp(&growth(a))
            .then(b.last_7_days.cmp(&a.last_7_days))
            .then(a.id.cmp(&b.id))
    });
    growing.truncate(5);
    Themes {
        top,
        growing,
        unthemed,
    }
}

fn scorecard(rows: &[Row], key: impl Fn(&Row) -> Option<&str>, min: u64) -> Vec<ScoreRow> {
    let mut by: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.sentiment.is_some()) {
        if let Some(k) = key(r) {
            let e = by.entry(k).or_default();
            e.0 += 1;
            e.1 += u64::from(r.sentiment.as_deref() == Some("negative"));
            e.2 += u64::from(r.blames_staff);
        }
    }
    let mut out: Vec<ScoreRow> = by
        .into_iter()
        .map(|(k, (n, neg, staff))| ScoreRow {
            key: k.to_string(),
            comments: n,
            negative: Rate::new(neg, n),
            corrected: Rate::new(staff, n),
            rank: None,
            praised_for: Vec::new(),
            criticised_for: Vec::new(),
        })
        .collect();
    out.sort_by(|a, b| {
        (a.comments < min)
            .cmp(&(b.comments < min))
            .then(a.corrected.rate.total_cmp(&b.corrected.rate))
            .then(b.comments.cmp(&a.comments))
            .then(a.key.cmp(&b.key))
    });
    let mut rank = 0;
    for r in out.iter_mut().filter(|r| r.comments >= min) {
        rank += 1;
        r.rank = Some(rank);
    }
    out
}

/// Fills each scorecard row's `praised_for` and `criticised_for` from the
/// staff mentions `key` attributes to it: the staff themes of its positive
/// and of its negative staff clauses, most mentioned first (ties by label),
/// up to three each.
fn with_staff_themes(
    mut out: Vec<ScoreRow>,
    mentions: &[MentionRow],
    key: impl Fn(&MentionRow) -> Option<&str>,
) -> Vec<ScoreRow> {
    // key -> theme id -> (label, negative, positive, latest negative and
    // positive clause; `read_mentions` gives them oldest first)
    type Tally<'a> = (&'a str, u64, u64, &'a str, &'a str);
    let mut by: BTreeMap<&str, BTreeMap<i32, Tally<'_>>> = BTreeMap::new();
    for m in mentions.iter().filter(|m| m.target == "staff") {
        let (Some(k), Some((id, label))) = (key(m), &m.theme) else {
            continue;
        };
        let e = by
            .entry(k)
            .or_default()
            .entry(*id)
            .or_insert((label.as_str(), 0, 0, "", ""));
        match m.polarity.as_str() {
            "negative" => {
                e.1 += 1;
                e.3 = &m.text;
            }
            "positive" => {
                e.2 += 1;
                e.4 = &m.text;
            }
            _ => {}
        }
    }
    let top = |themes: &BTreeMap<i32, Tally<'_>>, negative: bool| {
        let mut v: Vec<ThemeCount> = themes
            .iter()
            .map(|(&id, t)| ThemeCount {
                id,
                label: t.0.to_string(),
                mentions: if negative { t.1 } else { t.2 },
                example: (if negative { t.3 } else { t.4 }).trim().to_string(),
            })
            .filter(|t| t.mentions > 0)
            .collect();
        v.sort_by(|a, b| b.mentions.cmp(&a.mentions).then(a.label.cmp(&b.label)));
        v.truncate(3);
        v
    };
    for row in &mut out {
        if let Some(themes) = by.get(row.key.as_str()) {
            row.praised_for = top(themes, false);
            row.criticised_for = top(themes, true);
        }
    }
    out
}

fn example(r: &Row, flag: &str) -> Example {
    Example {
        id: r.id.clone(),
        staff_id: r.staff_id.clone(),
        location: r.location.clone(),
        evidence: r.evidence(flag).unwrap_or_default().to_string(),
        text: r.text.clone(),
    }
}

fn newest_first(rows: &[Row]) -> Vec<&Row> {
    let mut v: Vec<&Row> = rows.iter().collect();
    v.sort_by(|a, b| b.event_time.cmp(&a.event_time).then(a.id.cmp(&b.id)));
    v
}

fn group_rates(rows: &[Row], key: impl Fn(&Row) -> Option<&str>, flag: &str) -> Vec<GroupRate> {
    let mut by: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in rows {
        if let Some(k) = key(r) {
            let e = by.entry(k).or_default();
            e.0 += u64::from(r.has(flag));
            e.1 += 1;
        }
    }
    let mut v: Vec<GroupRate> = by
        .into_iter()
        .map(|(k, (hit, n))| GroupRate {
            key: k.to_string(),
            rate: Rate::new(hit, n),
        })
        .collect();
    v.sort_by(|a, b| {
        b.rate
            .rate
            .total_cmp(&a.rate.rate)
            .then(b.rate.n.cmp(&a.rate.n))
            .then(a.key.cmp(&b.key))
    });
    v
}

fn solicitation(rows: &[Row]) -> Solicitation {
    let flag = "score_solicited";
    Solicitation {
        overall: Rate::new(
            rows.iter().filter(|r| r.has(flag)).count() as u64,
            rows.len() as u64,
        ),
        by_location: group_rates(rows, |r| r.location.as_deref(), flag),
        by_staff: group_rates(rows, |r| r.staff_id.as_deref(), flag),
        examples: newest_first(rows)
            .into_iter()
            .filter(|r| r.has(flag))
            .take(5)
            .map(|r| example(r, flag))
            .collect(),
    }
}

/// The follow-up flags, most urgent first.
pub const FOLLOW_UP_FLAGS: [&str; 3] = ["safety_risk", "contact_requested", "repeat_issue"];

fn follow_up(rows: &[Row], now: DateTime<Utc>) -> Vec<FollowUp> {
    let mut v: Vec<FollowUp> = rows
        .iter()
        .filter_map(|r| {
            let flags: Vec<String> = FOLLOW_UP_FLAGS
                .iter()
                .filter(|f| r.has(f))
                .map(|f| f.to_string())
                .collect();
            let first = flags.first()?;
            let priority = if r.has("safety_risk") {
                1
            } else if r.has("contact_requested") && r.has("repeat_issue") {
                2
            } else {
                3
            };
            Some(FollowUp {
                id: r.id.clone(),
                priority,
                evidence: r.evidence(first).unwrap_or_default().to_string(),
                flags,
                event_time: r.event_time,
                age_hours: (now - r.event_time).num_hours().max(0),
                staff_id: r.staff_id.clone(),
                location: r.location.clone(),
                text: r.text.clone(),
            })
        })
        .collect();
    v.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.event_time.cmp(&a.event_time))
            .then(a.id.cmp(&b.id))
    });
    v
}

fn fatigue(rows: &[Row]) -> Fatigue {
    let flag = "survey_fatigue";
    let mut daily: BTreeMap<NaiveDate, (u64, u64)> = BTreeMap::new();
    for r in rows {
        let e = daily.entry(r.event_time.date_naive()).or_default();
        e.0 += u64::from(r.has(flag));
        e.1 += 1;
    }
    Fatigue {
        overall: Rate::new(
            rows.iter().filter(|r| r.has(flag)).count() as u64,
            rows.len() as u64,
        ),
        daily: daily.into_iter().map(|(d, (k, n))| (d, k, n)).collect(),
        examples: newest_first(rows)
            .into_iter()
            .filter(|r| r.has(flag))
            .take(3)
            .map(|r| example(r, flag))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 8 of 10: Wilson 95% = [0.4902, 0.9433] (Newcombe 1998, table I style).
        let r = Rate::new(8, 10);
        assert!(
            (r.low - 0.4902).abs() < 1e-3 && (r.high - 0.9433).abs() < 1e-3,
            "{r:?}"
        );
        let z = Rate::new(0, 20);
        assert_eq!(z.low, 0.0);
        assert!((z.high - 0.1611).abs() < 1e-3, "{z:?}");
        assert_eq!(Rate::new(0, 0).high, 1.0);
    }

    fn row(id: &str, day: u32, staff: &str, sentiment: &str, blames_staff: bool) -> Row {
        Row {
            id: id.into(),
            event_time: Utc.with_ymd_and_hms(2026, 10, day, 12, 0, 0).unwrap(),
            text: format!("comment {id}"),
            staff_id: Some(staff.into()),
            sentiment: Some(sentiment.into()),
            blames_staff,
            ..Row::default()
        }
    }

    fn mention(
        comment: &str,
        staff: &str,
        target: &str,
        polarity: &str,
        theme: Option<(i32, &str)>,
    ) -> MentionRow {
        MentionRow {
            comment_id: comment.into(),
            staff_id: Some(staff.into()),
            location: Some("Leeds".into()),
            target: target.into(),
            polarity: polarity.into(),
            theme: theme.map(|(id, l)| (id, l.to_string())),
            text: format!("{target} {polarity} in {comment}"),
            ..MentionRow::default()
        }
    }

    /// Issue 15, point 6: the scorecard says what each person is praised
    /// and criticised for, from the staff themes of their staff clauses
    /// only; praise beside a product complaint, in either language, never
    /// counts against them.
    #[test]
    fn scorecard_names_the_staff_themes_each_person_is_praised_and_criticised_for() {
        let mut rows = vec![
            // "The engineer explained everything clearly, but the router keeps dropping."
            row("1", 1, "ENG-1", "negative", false),
            // "Инженер всё понятно объяснил, но роутер постоянно отключается."
            row("2", 2, "ENG-1", "negative", false),
            row("3", 3, "ENG-1", "positive", false),
            // "He was rude on the phone."
            row("4", 4, "ENG-2", "negative", true),
            row("5", 5, "ENG-2", "negative", true),
        ];
        for r in &mut rows {
            r.location = Some("Leeds".into());
        }
        let clearly = Some((7, "explains clearly"));
        let rude = Some((9, "rude on the phone"));
        let mentions = vec![
            mention("1", "ENG-1", "staff", "positive", clearly),
            mention(
                "1",
                "ENG-1",
                "product",
                "negative",
                Some((3, "router keeps dropping")),
            ),
            mention("2", "ENG-1", "staff", "positive", clearly),
            mention(
                "2",
                "ENG-1",
                "product",
                "negative",
                Some((3, "router keeps dropping")),
            ),
            mention("3", "ENG-1", "staff", "positive", Some((8, "on time"))),
            mention("4", "ENG-2", "staff", "negative", rude),
            mention("5", "ENG-2", "staff", "negative", rude),
            mention("5", "ENG-2", "staff", "positive", None),
        ];
        let b = ReportBuilder::new("out").min_comments(1);
        let none = crate::followup::status::StatusReport::default();
        let r = b.compute_with(&rows, &mentions, &none);
        assert!(r.scorecard.staff_themes);
        let by = |k: &str| r.scorecard.staff.iter().find(|s| s.key == k).unwrap();
        let eng1 = by("ENG-1");
        let labels = |v: &[ThemeCount]| {
            v.iter()
                .map(|t| (t.label.clone(), t.mentions))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(&eng1.praised_for),
            [
                ("explains clearly".to_string(), 2),
                ("on time".to_string(), 1)
            ]
        );
        // The product complaints are not theirs: no theme against them, and
        // no staff-aimed negative either, though both comments are negative.
        assert!(eng1.criticised_for.is_empty(), "{eng1:?}");
        assert_eq!((eng1.negative.k, eng1.corrected.k), (2, 0));
        let eng2 = by("ENG-2");
        assert_eq!(
            labels(&eng2.criticised_for),
            [("rude on the phone".to_string(), 2)]
        );
        assert!(
            eng2.praised_for.is_empty(),
            "an unthemed clause names nothing"
        );
        assert_eq!(eng1.rank, Some(1));
        // A location gathers its staff's themes.
        let leeds = &r.scorecard.locations[0];
        assert_eq!(leeds.key, "Leeds");
        assert_eq!(
            labels(&leeds.praised_for)[0],
            ("explains clearly".to_string(), 2)
        );
        assert_eq!(labels(&leeds.criticised_for), labels(&eng2.criticised_for));
        // Markdown and HTML show them.
        let md = render::markdown(&r);
        // Each theme with the latest clause that put the person in it.
        assert!(
            md.contains(
                "explains clearly ×2 (“staff positive in 2”); on time ×1 (“staff positive in 3”)"
            ),
            "{md}"
        );
        assert!(
            md.contains("rude on the phone ×2 (“staff negative in 5”)"),
            "{md}"
        );
        let html = render::html(&r);
        assert!(html.contains("<th>praised for</th>") && html.contains("rude on the phone ×2"));
        // Without themes per mention the columns say why they are empty.
        let plain = b.compute(&rows);
        assert!(!plain.scorecard.staff_themes);
        assert!(render::markdown(&plain).contains("themes.unit"));
    }

    /// With themes per mention, a theme's examples are the clauses it holds,
    /// not the comments around them; without, the comments.
    #[test]
    fn theme_examples_are_the_clauses_the_theme_holds() {
        let mut rows = vec![
            row("1", 1, "ENG-1", "negative", false),
            row("2", 2, "ENG-1", "negative", false),
        ];
        for r in &mut rows {
            r.theme = Some((3, "router keeps dropping".into()));
        }
        let mentions = vec![
            mention(
                "1",
                "ENG-1",
                "staff",
                "positive",
                Some((7, "explains clearly")),
            ),
            mention("1", "ENG-1", "product", "negative", Some((3, "router"))),
            mention("2", "ENG-1", "product", "negative", Some((3, "router"))),
            // Another comment's clause in the theme: not a member here.
            mention("9", "ENG-1", "product", "negative", Some((3, "router"))),
        ];
        let b = ReportBuilder::new("out");
        let none = crate::followup::status::StatusReport::default();
        let t = &b.compute_with(&rows, &mentions, &none).themes.top[0];
        assert_eq!(t.id, 3);
        assert_eq!(
            t.examples,
            ["product negative in 2", "product negative in 1"]
        );
        let plain = &b.compute(&rows).themes.top[0];
        assert_eq!(plain.examples, ["comment 2", "comment 1"]);
    }

    #[test]
    fn scorecard_corrects_for_product_complaints_and_never_ranks_thin_data() {
        let mut rows = Vec::new();
        for i in 0..12 {
            // A: every comment negative, none aimed at staff.
            let mut r = row(&format!("a{i}"), 1, "A", "negative", false);
            r.blames_product = true;
            rows.push(r);
            // B: half negative, all of those at staff.
            rows.push(row(
                &format!("b{i}"),
                1,
                "B",
                if i % 2 == 0 { "negative" } else { "positive" },
                i % 2 == 0,
            ));
        }
        rows.push(row("c0", 1, "C", "negative", true));
        let s = scorecard(&rows, |r| r.staff_id.as_deref(), 10);
        let get = |k: &str| s.iter().find(|r| r.key == k).unwrap();
        assert_eq!(get("A").negative.rate, 1.0);
        assert_eq!(get("A").corrected.rate, 0.0);
        assert_eq!(get("A").rank, Some(1));
        assert_eq!(get("B").rank, Some(2));
        assert_eq!(get("C").rank, None, "one comment is not enough to rank");
        assert_eq!(s.last().unwrap().key, "C");
    }

    #[test]
    fn skewed_scores_get_a_note_and_the_queue_puts_safety_first() {
        let mut rows = Vec::new();
        for (i, s) in [0.0, 0.0, 10.0, 10.0, 10.0, 9.0, 1.0].iter().enumerate() {
            let mut r = row(&format!("r{i}"), 1 + i as u32, "A", "neutral", false);
            r.score = Some(*s);
            rows.push(r);
        }
        rows[1]
            .flags
            .push(("contact_requested".into(), "call me".into()));
        rows[2].flags.push(("safety_risk".into(), "sparks".into()));
        rows[5]
            .flags
            .push(("contact_requested".into(), "call me".into()));
        rows[5]
            .flags
            .push(("repeat_issue".into(), "third time".into()));
        let rep = ReportBuilder::new("x")
            .now(Utc.with_ymd_and_hms(2026, 10, 10, 0, 0, 0).unwrap())
            .compute(&rows);
        assert_eq!(rep.overview.scores.n, 7);
        assert_eq!(rep.overview.scores.histogram.len(), 11);
        assert!(rep.overview.scores.skew_note.is_some());
        let q: Vec<(&str, u8)> = rep
            .follow_up
            .iter()
            .map(|f| (f.id.as_str(), f.priority))
            .collect();
        assert_eq!(q, vec![("r2", 1), ("r5", 2), ("r1", 3)]);
        // r2 was written on day 3 at noon; now is day 10 at midnight.
        assert_eq!(rep.follow_up[0].age_hours, 6 * 24 + 12);
    }
}
