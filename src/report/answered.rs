//! Section 7, "Did we answer?": the follow-up queue against the responses
//! that came back ([`crate::followup`]): time to a first answer as a
//! distribution per priority, the answer rate of customers who asked to be
//! contacted, by channel and location, the overdue queue with its evidence,
//! customers who came back with the same complaint, and per theme "asked,
//! acted": the share of negative comments that got an action and an answer.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Rate;
use crate::followup::status::{quantile, ActionStatus, Status, StatusReport};
use crate::followup::PRIORITIES;
use crate::sink::read::Row;

/// Buckets of the time to a first answer, in hours (upper bounds).
pub const BUCKETS: [(&str, f64); 5] = [
    ("≤ 1 h", 1.0),
    ("≤ 4 h", 4.0),
    ("≤ 24 h", 24.0),
    ("≤ 3 d", 72.0),
    ("≤ 7 d", 168.0),
];

/// One priority's row.
#[derive(Debug, Clone, Serialize)]
pub struct PriorityAnswer {
    /// `urgent`, `high`, `normal`, `low`.
    pub priority: String,
    /// Its SLA in hours.
    pub sla_hours: f64,
    /// Queued comments.
    pub actions: u64,
    /// Answered or resolved, of the queued.
    pub answered: Rate,
    /// Answered by the due time, of the queued.
    pub within_sla: Rate,
    /// Past due with no answer.
    pub overdue: u64,
    /// Time to a first answer: count per bucket, then `> 7 d`, then
    /// `not yet`.
    pub time_to_answer: Vec<(String, u64)>,
}

/// Answer rate of one group (a channel or a location).
#[derive(Debug, Clone, Serialize)]
pub struct GroupAnswer {
    /// The channel or location.
    pub key: String,
    /// Answered or resolved, of the queued.
    pub answered: Rate,
    /// Median hours to a first answer, over the answered.
    pub median_hours: Option<f64>,
    /// 90th percentile of the same: the slow tail.
    pub p90_hours: Option<f64>,
}

/// One overdue action.
#[derive(Debug, Clone, Serialize)]
pub struct Overdue {
    /// Comment id.
    pub id: String,
    /// `urgent` … `low`.
    pub priority: String,
    /// Hours past its due time, at the as-of moment.
    pub hours_overdue: i64,
    /// Queued flags.
    pub flags: Vec<String>,
    /// Evidence of the first flag (from `comments/`).
    pub evidence: String,
    /// Events that did not reach the customer.
    pub attempts: u32,
    /// Staff id.
    pub staff_id: Option<String>,
    /// Location.
    pub location: Option<String>,
    /// The comment.
    pub text: String,
}

/// A customer who came back with the same complaint.
#[derive(Debug, Clone, Serialize)]
pub struct RepeatCustomer {
    /// The (hashed) customer id.
    pub customer_id: String,
    /// Their comments in the window.
    pub comments: u64,
    /// Their comments that repeat an earlier complaint.
    pub repeats: u64,
    /// Their latest comment's id.
    pub latest: String,
    /// Whether anyone answered any of their queued comments.
    pub answered: bool,
}

/// One theme's "asked, acted".
#[derive(Debug, Clone, Serialize)]
pub struct ThemeLoop {
    /// Theme id.
    pub id: i32,
    /// Label.
    pub label: String,
    /// Negative comments in the theme.
    pub negative: u64,
    /// Of those, queued for a person.
    pub acted: Rate,
    /// Of those, answered.
    pub answered: Rate,
    /// Negative comments in the last 7 days of the window.
    pub last_7_days: u64,
    /// In the 7 days before.
    pub previous_7_days: u64,
    /// Set when the theme grows while at most a quarter of its negative
    /// comments got an answer.
    pub warning: Option<String>,
}

/// Section 7.
#[derive(Debug, Clone, Serialize)]
pub struct Answered {
    /// The moment the statuses hold for.
    pub as_of: DateTime<Utc>,
    /// Queued comments.
    pub queued: u64,
    /// Per priority.
    pub by_priority: Vec<PriorityAnswer>,
    /// Comments that asked to be contacted: answered, of them.
    pub contact_requested: Rate,
    /// Per channel of the comment.
    pub by_channel: Vec<GroupAnswer>,
    /// Per location.
    pub by_location: Vec<GroupAnswer>,
    /// Overdue actions, most overdue first.
    pub overdue: Vec<Overdue>,
    /// Customers with a repeat complaint, most comments first.
    pub repeat_customers: Vec<RepeatCustomer>,
    /// Themes with negative comments, most negative first.
    pub themes: Vec<ThemeLoop>,
    /// Responses to comments never queued, sent twice, dated early.
    pub unmatched: usize,
    /// Responses sent twice (counted once).
    pub duplicates: usize,
    /// Responses dated before their comment.
    pub early: usize,
}

fn reached(a: &ActionStatus) -> bool {
    matches!(a.status, Status::Answered | Status::Resolved)
}

fn groups(list: &[&ActionStatus], key: impl Fn(&ActionStatus) -> Option<&str>) -> Vec<GroupAnswer> {
    let mut m: BTreeMap<&str, Vec<&ActionStatus>> = BTreeMap::new();
    for a in list {
        if let Some(k) = key(a) {
            m.entry(k).or_default().push(a);
        }
    }
    let mut out: Vec<GroupAnswer> = m
        .into_iter()
        .map(|(k, v)| {
            let hours: Vec<f64> = v.iter().filter_map(|a| a.hours_to_first_response).collect();
            GroupAnswer {
                key: k.to_string(),
                answered: Rate::new(
                    v.iter().filter(|a| reached(a)).count() as u64,
                    v.len() as u64,
                ),
                median_hours: quantile(&hours, 0.5),
                p90_hours: quantile(&hours, 0.9),
            }
        })
        .collect();
    out.sort_by(|a, b| b.answered.n.cmp(&a.answered.n).then(a.key.cmp(&b.key)));
    out
}

/// Computes the section from the statuses and the window's comments.
pub fn answered(status: &StatusReport, rows: &[Row], sla_hours: [f64; 4]) -> Answered {
    let by_id: HashMap<&str, &Row> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    // Only actions whose comment is in the window.
    let acts: Vec<&ActionStatus> = status
        .actions
        .iter()
        .filter(|a| by_id.contains_key(a.action.comment_id.as_str()))
        .collect();
    let by_priority = PRIORITIES
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let p = (i + 1) as u8;
            let v: Vec<&&ActionStatus> = acts.iter().filter(|a| a.action.priority == p).collect();
            let n = v.len() as u64;
            let mut buckets = vec![0u64; BUCKETS.len() + 2];
            for a in &v {
                let b = match a.hours_to_first_response {
                    None => BUCKETS.len() + 1,
                    Some(h) => BUCKETS
                        .iter()
                        .position(|(_, max)| h <= *max)
                        .unwrap_or(BUCKETS.len()),
                };
                buckets[b] += 1;
            }
            let names = BUCKETS.iter().map(|(l, _)| *l).chain(["> 7 d", "not yet"]);
            PriorityAnswer {
                priority: (*label).to_string(),
                sla_hours: sla_hours[i],
                actions: n,
                answered: Rate::new(v.iter().filter(|a| reached(a)).count() as u64, n),
                within_sla: Rate::new(
                    v.iter()
                        .filter(|a| reached(a) && a.within_sla == Some(true))
                        .count() as u64,
                    n,
                ),
                overdue: v.iter().filter(|a| a.status == Status::Overdue).count() as u64,
                time_to_answer: names.map(String::from).zip(buckets).collect(),
            }
        })
        .collect();
    let contact: Vec<&&ActionStatus> = acts
        .iter()
        .filter(|a| a.action.flags.iter().any(|f| f == "contact_requested"))
        .collect();
    let mut overdue: Vec<Overdue> = acts
        .iter()
        .filter(|a| a.status == Status::Overdue)
        .map(|a| {
            let row = by_id.get(a.action.comment_id.as_str());
            Overdue {
                id: a.action.comment_id.clone(),
                priority: PRIORITIES[usize::from(a.action.priority.clamp(1, 4)) - 1].into(),
                hours_overdue: (status.as_of - a.due_at).num_hours(),
                flags: a.action.flags.clone(),
                evidence: a
                    .action
                    .flags
                    .first()
                    .and_then(|f| row.and_then(|r| r.evidence(f)))
                    .unwrap_or_default()
                    .to_string(),
                attempts: a.attempts,
                staff_id: a.action.staff_id.clone(),
                location: a.action.location.clone(),
                text: row.map(|r| r.text.clone()).unwrap_or_default(),
            }
        })
        .collect();
    overdue.sort_by(|a, b| {
        (a.priority_rank(), -a.hours_overdue, &a.id).cmp(&(
            b.priority_rank(),
            -b.hours_overdue,
            &b.id,
        ))
    });
    let answered_ids: std::collections::HashSet<&str> = acts
        .iter()
        .filter(|a| reached(a))
        .map(|a| a.action.comment_id.as_str())
        .collect();
    let mut customers: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        if let Some(c) = &r.customer_id {
            customers.entry(c).or_default().push(r);
        }
    }
    let mut repeat_customers: Vec<RepeatCustomer> = customers
        .into_iter()
        .filter(|(_, v)| v.iter().any(|r| !r.repeat_of.is_empty()))
        .map(|(c, v)| RepeatCustomer {
            customer_id: c.to_string(),
            comments: v.len() as u64,
            repeats: v.iter().filter(|r| !r.repeat_of.is_empty()).count() as u64,
            latest: v
                .iter()
                .max_by_key(|r| (r.event_time, &r.id))
                .map(|r| r.id.clone())
                .unwrap_or_default(),
            answered: v.iter().any(|r| answered_ids.contains(r.id.as_str())),
        })
        .collect();
    repeat_customers.sort_by(|a, b| {
        b.comments
            .cmp(&a.comments)
            .then(a.customer_id.cmp(&b.customer_id))
    });
    let queued: std::collections::HashSet<&str> =
        acts.iter().map(|a| a.action.comment_id.as_str()).collect();
    let last_day = rows.iter().map(|r| r.event_time.date_naive()).max();
    let mut per_theme: BTreeMap<i32, (String, Vec<&Row>)> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.sentiment.as_deref() == Some("negative"))
    {
        if let Some((id, label)) = &r.theme {
            per_theme
                .entry(*id)
                .or_insert_with(|| (label.clone(), Vec::new()))
                .1
                .push(r);
        }
    }
    let mut themes: Vec<ThemeLoop> = per_theme
        .into_iter()
        .map(|(id, (label, v))| {
            let n = v.len() as u64;
            let acted = v.iter().filter(|r| queued.contains(r.id.as_str())).count() as u64;
            let ans = v.iter().filter(|r| answered_ids.contains(r.id.as_str())).count() as u64;
            let age = |r: &&Row| last_day.map_or(0, |d| (d - r.event_time.date_naive()).num_days());
            let last = v.iter().filter(|r| age(r) < 7).count() as u64;
            let prev = v.iter().filter(|r| (7..14).contains(&age(r))).count() as u64;
            let answered = Rate::new(ans, n);
            let warning = (last > prev && last >= 3 && answered.rate <= 0.25).then(|| {
                format!(
                    "growing ({last} negative comments in the last 7 days, {prev} the week before) and {} of {n} answered: customers are raising it and hearing nothing back",
                    ans
                )
            });
            ThemeLoop {
                id,
                label: if label.is_empty() {
                    format!("theme {id}")
                } else {
                    label
                },
                negative: n,
                acted: Rate::new(acted, n),
                answered,
                last_7_days: last,
                previous_7_days: prev,
                warning,
            }
        })
        .collect();
    themes.sort_by(|a, b| b.negative.cmp(&a.negative).then(a.id.cmp(&b.id)));
    Answered {
        as_of: status.as_of,
        queued: acts.len() as u64,
        by_priority,
        contact_requested: Rate::new(
            contact.iter().filter(|a| reached(a)).count() as u64,
            contact.len() as u64,
        ),
        by_channel: groups(&acts, |a| a.action.channel.as_deref()),
        by_location: groups(&acts, |a| a.action.location.as_deref()),
        overdue,
        repeat_customers,
        themes,
        unmatched: status.unmatched,
        duplicates: status.duplicates,
        early: status.early,
    }
}

impl Overdue {
    fn priority_rank(&self) -> usize {
        PRIORITIES
            .iter()
            .position(|p| *p == self.priority)
            .unwrap_or(PRIORITIES.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::Outcome;
    use crate::followup::status::{compute, ActionRow, ResponseRow, Sla};
    use chrono::{Duration, TimeZone};

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn row(id: &str, h: i64, theme: i32, customer: Option<&str>, repeat: &[&str]) -> Row {
        Row {
            id: id.into(),
            event_time: t(h),
            text: format!("text {id}"),
            sentiment: Some("negative".into()),
            flags: vec![("contact_requested".into(), format!("call me {id}"))],
            theme: Some((theme, format!("theme {theme}"))),
            customer_id: customer.map(String::from),
            repeat_of: repeat.iter().map(|s| s.to_string()).collect(),
            location: Some("Leeds".into()),
            ..Default::default()
        }
    }

    fn action(id: &str, p: u8, h: i64) -> ActionRow {
        ActionRow {
            comment_id: id.into(),
            priority: p,
            event_time: t(h),
            location: Some("Leeds".into()),
            channel: Some("survey".into()),
            flags: vec!["contact_requested".into()],
            ..Default::default()
        }
    }

    #[test]
    fn the_section_counts_answers_buckets_overdue_repeats_and_silent_themes() {
        // Theme 1 grows in the last week and nobody answers it.
        let rows = vec![
            row("a", 0, 2, Some("c1"), &[]),
            row("b", 24 * 10, 1, Some("c1"), &["a"]),
            row("c", 24 * 11, 1, None, &[]),
            row("d", 24 * 12, 1, None, &[]),
            row("e", 24 * 12, 2, None, &[]),
        ];
        let actions = [action("a", 2, 0), action("b", 2, 240), action("c", 1, 264)];
        let events = [ResponseRow {
            response_id: "r1".into(),
            comment_id: "a".into(),
            responded_at: t(3),
            outcome: Outcome::Contacted,
            channel: None,
            agent: None,
        }];
        let sla = Sla([
            Duration::hours(4),
            Duration::hours(24),
            Duration::hours(72),
            Duration::days(7),
        ]);
        let status = compute(&actions, &events, &sla, t(24 * 13));
        let s = answered(&status, &rows, [4.0, 24.0, 72.0, 168.0]);
        assert_eq!(s.queued, 3);
        let high = &s.by_priority[1];
        assert_eq!(
            (
                high.actions,
                high.answered.k,
                high.within_sla.k,
                high.overdue
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(high.time_to_answer[1], ("≤ 4 h".to_string(), 1));
        assert_eq!(high.time_to_answer[6], ("not yet".to_string(), 1));
        assert_eq!((s.contact_requested.k, s.contact_requested.n), (1, 3));
        assert_eq!(s.by_location[0].key, "Leeds");
        assert_eq!(s.by_location[0].median_hours, Some(3.0));
        assert_eq!(s.by_location[0].p90_hours, Some(3.0));
        // Overdue: the urgent one first, with its evidence.
        let ids: Vec<&str> = s.overdue.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(s.overdue[0].evidence, "call me c");
        assert_eq!(s.overdue[0].hours_overdue, 24 * 13 - 264 - 4);
        // c1 came back; one of their comments was answered.
        assert_eq!(s.repeat_customers.len(), 1);
        let c1 = &s.repeat_customers[0];
        assert_eq!(
            (c1.comments, c1.repeats, c1.latest.as_str(), c1.answered),
            (2, 1, "b", true)
        );
        // Theme 1: 3 negative, 2 queued, none answered, all lately: warned.
        let t1 = s.themes.iter().find(|t| t.id == 1).unwrap();
        assert_eq!((t1.negative, t1.acted.k, t1.answered.k), (3, 2, 0));
        assert!(t1
            .warning
            .as_deref()
            .is_some_and(|w| w.contains("hearing nothing back")));
        let t2 = s.themes.iter().find(|t| t.id == 2).unwrap();
        assert!(t2.warning.is_none(), "answered and not growing");
    }
}
