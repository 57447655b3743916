//! Action status: for every comment in the queue (`actions/`), whether and
//! how fast someone answered (`responses/`), against the SLA of its
//! priority (`[actions.sla]`), as of a moment.
//!
//! The rules, each tested below:
//! - the SLA clock starts when the customer wrote (`event_time`); the
//!   action is due that long after;
//! - an event that reached the customer (`contacted`, `resolved`,
//!   `declined`) answers it; `no_answer` is an attempt only;
//! - status: `resolved` (an event said so), else `answered`, else `overdue`
//!   (past due), else `open`; `within_sla` says whether the first answer
//!   came by the due time, so an action answered late is `answered` with
//!   `within_sla = false`;
//! - one event sent twice (the same `response_id`) counts once; events
//!   after the as-of moment are not seen yet;
//! - an event dated before the comment (clocks disagree) answers it in
//!   zero time and is counted as `early`;
//! - events for comments that are not in the queue are counted apart
//!   (`unmatched`), not dropped.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use crate::comment::Outcome;

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Not answered, not yet due.
    Open,
    /// Not answered and past due.
    Overdue,
    /// The customer was reached.
    Answered,
    /// An event said the problem was solved.
    Resolved,
}

impl Status {
    /// Every status, in a stable order.
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Overdue,
        Status::Answered,
        Status::Resolved,
    ];

    /// `open`, `overdue`, `answered` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Overdue => "overdue",
            Status::Answered => "answered",
            Status::Resolved => "resolved",
        }
    }
}

/// Time to a first answer per priority (1 urgent … 4 low).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sla(pub [Duration; 4]);

impl Sla {
    /// The SLA of `priority` (1–4; anything else counts as low).
    pub fn of(&self, priority: u8) -> Duration {
        self.0[usize::from(priority.clamp(1, 4)) - 1]
    }
}

/// One row of `actions/`, as the status needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActionRow {
    /// The comment's id (the action's id).
    pub comment_id: String,
    /// 1 urgent … 4 low.
    pub priority: u8,
    /// When the customer wrote.
    pub event_time: DateTime<Utc>,
    /// The comment's staff id.
    pub staff_id: Option<String>,
    /// The comment's location.
    pub location: Option<String>,
    /// The comment's channel.
    pub channel: Option<String>,
    /// The comment's product.
    pub product: Option<String>,
    /// The comment's (hashed) customer id.
    pub customer_id: Option<String>,
    /// The queued flags.
    pub flags: Vec<String>,
}

/// One row of `responses/`, as the status needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseRow {
    /// The event's id.
    pub response_id: String,
    /// The comment it answers.
    pub comment_id: String,
    /// When it happened.
    pub responded_at: DateTime<Utc>,
    /// What it achieved.
    pub outcome: Outcome,
    /// How.
    pub channel: Option<String>,
    /// Who.
    pub agent: Option<String>,
}

/// One action's status.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionStatus {
    /// The action.
    pub action: ActionRow,
    /// Where it stands.
    pub status: Status,
    /// `event_time` + the SLA of its priority.
    pub due_at: DateTime<Utc>,
    /// The first event that reached the customer.
    pub first_response_at: Option<DateTime<Utc>>,
    /// Its channel and agent.
    pub first_response: Option<(Option<String>, Option<String>)>,
    /// Hours from `event_time` to the first answer (0 when the event is
    /// dated earlier).
    pub hours_to_first_response: Option<f64>,
    /// Answered by the due time; `Some(false)` when overdue; `None` while
    /// open and not yet due.
    pub within_sla: Option<bool>,
    /// Events seen (attempts included), duplicates counted once.
    pub attempts: u32,
    /// Outcome of the latest event.
    pub last_outcome: Option<Outcome>,
}

/// The `q`-quantile (0..1) of `values`, interpolated between the closest
/// ranks as DuckDB's `quantile_cont` (and `median`) do, so the command, the
/// report and the README's SQL agree; `None` when there are none.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let last = v.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// Everything [`compute`] found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusReport {
    /// The moment the statuses hold for.
    pub as_of: DateTime<Utc>,
    /// One per queued comment, oldest first.
    pub actions: Vec<ActionStatus>,
    /// Events that answer no queued comment.
    pub unmatched: usize,
    /// Events sent more than once (counted once).
    pub duplicates: usize,
    /// Events dated before the comment they answer.
    pub early: usize,
    /// Events dated after `as_of` (not counted yet).
    pub later: usize,
}

impl StatusReport {
    /// Actions per (priority, status).
    pub fn counts(&self) -> BTreeMap<(u8, Status), usize> {
        let mut m = BTreeMap::new();
        for a in &self.actions {
            *m.entry((a.action.priority, a.status)).or_insert(0) += 1;
        }
        m
    }
}

/// The statuses of `actions` given `responses`, as of `as_of`.
pub fn compute(
    actions: &[ActionRow],
    responses: &[ResponseRow],
    sla: &Sla,
    as_of: DateTime<Utc>,
) -> StatusReport {
    let mut report = StatusReport {
        as_of,
        ..Default::default()
    };
    // One action per comment id: the earliest (a comment id sent twice).
    let mut by_id: HashMap<&str, &ActionRow> = HashMap::new();
    for a in actions {
        let e = by_id.entry(&a.comment_id).or_insert(a);
        if a.event_time < e.event_time {
            *e = a;
        }
    }
    // One event per response id: the earliest copy.
    let mut seen: HashMap<&str, &ResponseRow> = HashMap::new();
    for r in responses {
        match seen.get(r.response_id.as_str()) {
            Some(prev) => {
                report.duplicates += 1;
                if (r.responded_at, &r.comment_id) < (prev.responded_at, &prev.comment_id) {
                    seen.insert(&r.response_id, r);
                }
            }
            None => {
                seen.insert(&r.response_id, r);
            }
        }
    }
    let mut per_action: HashMap<&str, Vec<&ResponseRow>> = HashMap::new();
    for r in seen.into_values() {
        if r.responded_at > as_of {
            report.later += 1;
        } else if by_id.contains_key(r.comment_id.as_str()) {
            per_action.entry(&r.comment_id).or_default().push(r);
        } else {
            report.unmatched += 1;
        }
    }
    let mut rows: Vec<&ActionRow> = by_id.into_values().collect();
    rows.sort_by(|a, b| (a.event_time, &a.comment_id).cmp(&(b.event_time, &b.comment_id)));
    for a in rows {
        let mut events = per_action.remove(a.comment_id.as_str()).unwrap_or_default();
        events.sort_by(|x, y| {
            (x.responded_at, &x.response_id).cmp(&(y.responded_at, &y.response_id))
        });
        report.early += events
            .iter()
            .filter(|e| e.responded_at < a.event_time)
            .count();
        let due_at = a.event_time + sla.of(a.priority);
        let first = events.iter().find(|e| e.outcome.reached());
        let resolved = events.iter().any(|e| e.outcome == Outcome::Resolved);
        let status = match (resolved, first) {
            (true, _) => Status::Resolved,
            (false, Some(_)) => Status::Answered,
            (false, None) if as_of > due_at => Status::Overdue,
            (false, None) => Status::Open,
        };
        let hours = first.map(|f| {
            (f.responded_at - a.event_time)
                .max(Duration::zero())
                .num_seconds() as f64
                / 3600.0
        });
        let within_sla = match (first, status) {
            (Some(f), _) => Some(f.responded_at <= due_at),
            (None, Status::Overdue) => Some(false),
            (None, _) => None,
        };
        report.actions.push(ActionStatus {
            action: a.clone(),
            status,
            due_at,
            first_response_at: first.map(|f| f.responded_at),
            first_response: first.map(|f| (f.channel.clone(), f.agent.clone())),
            hours_to_first_response: hours,
            within_sla,
            attempts: events.len() as u32,
            last_outcome: events.last().map(|e| e.outcome),
        });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn action(id: &str, priority: u8, at: i64) -> ActionRow {
        ActionRow {
            comment_id: id.into(),
            priority,
            event_time: t(at),
            ..Default::default()
        }
    }

    fn event(id: &str, comment: &str, at: DateTime<Utc>, outcome: Outcome) -> ResponseRow {
        ResponseRow {
            response_id: id.into(),
            comment_id: comment.into(),
            responded_at: at,
            outcome,
            channel: Some("phone".into()),
            agent: Some("A1".into()),
        }
    }

    fn sla() -> Sla {
        Sla([
            Duration::hours(4),
            Duration::hours(24),
            Duration::hours(72),
            Duration::days(7),
        ])
    }

    fn one(r: &StatusReport, id: &str) -> ActionStatus {
        r.actions
            .iter()
            .find(|a| a.action.comment_id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no action {id}"))
    }

    use Outcome::*;

    #[test]
    fn open_overdue_answered_and_resolved() {
        let actions = [
            action("open", 3, 0),
            action("late", 1, 0),
            action("called", 2, 0),
            action("fixed", 2, 0),
        ];
        let events = [
            event("e1", "called", t(3), Contacted),
            event("e2", "fixed", t(2), NoAnswer),
            event("e3", "fixed", t(5), Resolved),
        ];
        let r = compute(&actions, &events, &sla(), t(10));
        let s = |id| one(&r, id);
        assert_eq!(s("open").status, Status::Open);
        assert_eq!(s("open").within_sla, None);
        assert_eq!(s("open").due_at, t(72));
        assert_eq!(s("late").status, Status::Overdue, "urgent: due after 4 h");
        assert_eq!(s("late").within_sla, Some(false));
        assert_eq!(s("called").status, Status::Answered);
        assert_eq!(s("called").hours_to_first_response, Some(3.0));
        assert_eq!(s("called").within_sla, Some(true));
        let fixed = s("fixed");
        assert_eq!(fixed.status, Status::Resolved);
        assert_eq!(fixed.attempts, 2);
        assert_eq!(
            fixed.hours_to_first_response,
            Some(5.0),
            "no_answer is not an answer"
        );
        assert_eq!(fixed.last_outcome, Some(Resolved));
        assert_eq!(r.counts()[&(1, Status::Overdue)], 1);
    }

    #[test]
    fn an_action_answered_after_being_overdue_is_answered_late() {
        let actions = [action("a", 1, 0)];
        let events = [event("e1", "a", t(9), Contacted)];
        // Before the answer it was overdue ...
        let before = compute(&actions, &events, &sla(), t(6));
        assert_eq!(one(&before, "a").status, Status::Overdue);
        assert_eq!(
            before.later, 1,
            "an event after the as-of moment is not seen yet"
        );
        // ... after it, answered, outside the SLA.
        let after = compute(&actions, &events, &sla(), t(10));
        let a = one(&after, "a");
        assert_eq!(a.status, Status::Answered);
        assert_eq!(a.within_sla, Some(false));
        assert_eq!(a.hours_to_first_response, Some(9.0));
    }

    #[test]
    fn a_response_dated_before_the_comment_answers_it_in_zero_time() {
        let actions = [action("a", 3, 5)];
        let events = [event("e1", "a", t(4), Contacted)];
        let r = compute(&actions, &events, &sla(), t(6));
        let a = one(&r, "a");
        assert_eq!(a.status, Status::Answered);
        assert_eq!(a.hours_to_first_response, Some(0.0));
        assert_eq!(r.early, 1);
    }

    #[test]
    fn an_event_sent_twice_counts_once_and_strays_are_counted_apart() {
        let actions = [action("a", 3, 0), action("a", 3, 1)];
        let events = [
            event("e1", "a", t(2), NoAnswer),
            event("e1", "a", t(2), NoAnswer),
            event("e2", "zzz", t(2), Contacted),
        ];
        let r = compute(&actions, &events, &sla(), t(3));
        assert_eq!(r.actions.len(), 1, "one action per comment id");
        assert_eq!(one(&r, "a").event_time_hours(), 0);
        assert_eq!(one(&r, "a").attempts, 1);
        assert_eq!(one(&r, "a").status, Status::Open);
        assert_eq!((r.duplicates, r.unmatched), (1, 1));
    }

    #[test]
    fn quantiles_interpolate_as_duckdb_does() {
        let v = [10.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        let p90 = quantile(&v, 0.9).unwrap();
        assert!((p90 - 7.6).abs() < 1e-12, "{p90}");
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[5.0], 0.9), Some(5.0));
    }

    #[test]
    fn time_zones_are_applied_before_the_arithmetic() {
        // Written 08:30 UTC; answered at 10:00 in UTC+2 = 08:00 UTC + 2 h.
        let written = Utc.with_ymd_and_hms(2026, 3, 4, 8, 30, 0).unwrap();
        let answered = chrono::DateTime::parse_from_rfc3339("2026-03-04T12:00:00+02:00")
            .unwrap()
            .with_timezone(&Utc);
        let a = ActionRow {
            comment_id: "a".into(),
            priority: 1,
            event_time: written,
            ..Default::default()
        };
        let r = compute(
            &[a],
            &[event("e", "a", answered, Contacted)],
            &sla(),
            answered,
        );
        assert_eq!(one(&r, "a").hours_to_first_response, Some(1.5));
        assert_eq!(one(&r, "a").within_sla, Some(true));
    }

    impl ActionStatus {
        fn event_time_hours(&self) -> i64 {
            (self.action.event_time - t(0)).num_hours()
        }
    }
}
