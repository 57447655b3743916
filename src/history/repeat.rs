//! The `history` operator: raises `repeat_issue` when a customer complains
//! again about a target they complained about within `actions.repeat_window`,
//! with the earlier comments' ids in `repeat_of`.
//!
//! A comment counts as a complaint about a target when one of its aspects
//! names that target with negative polarity. History is kept per Kafka
//! partition ([`PartitionHistory`], saved under `history/` before every
//! file commit), so a comment's flag depends only on the messages before it
//! in its own partition: a replay after a crash, or a partition moving to
//! another instance, gives the same rows. Key the input topic by customer
//! (the usual Kafka practice) so that one customer's comments share a
//! partition; a customer spread over partitions is only matched within each.

use crate::sink::store::OutputStore;
use std::collections::HashMap;

use super::store::{customer_key, history_path, HistoryError, PartitionHistory};
use crate::batch::CommentBatch;
use crate::comment::{Comment, Evidence, Polarity};
use crate::nlp::{Operator, OperatorError};

/// One partition's history in memory.
struct Slot {
    history: PartitionHistory,
    /// The offset after the last comment this operator read.
    next: i64,
    /// Changed since it was last saved.
    dirty: bool,
}

/// Finds repeat complaints from each customer's history.
pub struct RepeatOperator {
    store: OutputStore,
    window_us: i64,
    slots: HashMap<(String, i32), Slot>,
    metrics: Option<crate::metrics::Metrics>,
}

impl RepeatOperator {
    /// An operator keeping history under `history/` in the output store,
    /// for `window`.
    pub fn new(store: OutputStore, window: chrono::Duration) -> Self {
        Self {
            store,
            window_us: window.num_microseconds().unwrap_or(i64::MAX),
            slots: HashMap::new(),
            metrics: None,
        }
    }

    fn failed(e: HistoryError) -> OperatorError {
        OperatorError::Failed {
            operator: "history".into(),
            message: e.to_string(),
        }
    }

    /// The partition's history, loaded from its file when first seen, and
    /// again when the file is ahead of memory at a gap in the offsets (the
    /// partition was read by another instance in between).
    fn slot(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<&mut Slot, OperatorError> {
        let key = (topic.to_string(), partition);
        let path = history_path(topic, partition);
        let reload = match self.slots.get(&key) {
            None => true,
            Some(s) if offset > s.next => PartitionHistory::through_on_disk(&self.store, &path)
                .map_err(Self::failed)?
                .is_some_and(|t| s.history.through().is_none_or(|m| t > m)),
            Some(_) => false,
        };
        if reload {
            let history = PartitionHistory::load(&self.store, &path).map_err(Self::failed)?;
            tracing::info!(
                topic,
                partition,
                customers = history.customers(),
                "history: loaded {}",
                path
            );
            self.slots.insert(
                key.clone(),
                Slot {
                    history,
                    next: offset,
                    dirty: false,
                },
            );
        }
        self.slots
            .get_mut(&key)
            .ok_or_else(|| unreachable!("inserted above"))
    }

    /// Checks one comment against its customer's history and records it.
    fn check(&mut self, c: &mut Comment) -> Result<(), OperatorError> {
        let (Some(customer), Some(aspects)) = (&c.customer_id, &c.nlp.aspects) else {
            return Ok(());
        };
        let window = self.window_us;
        let key = customer_key(customer);
        let at = c.event_time.timestamp_micros();
        let offset = c.coords.offset;
        let slot = self.slot(&c.coords.topic, c.coords.partition, offset)?;
        let mut targets: Vec<&str> = Vec::new();
        let mut evidence = Vec::new();
        let mut earlier: Vec<(i64, String)> = Vec::new();
        for a in aspects.iter().filter(|a| a.polarity == Polarity::Negative) {
            if targets.contains(&&*a.target) {
                continue;
            }
            targets.push(&a.target);
            let found = slot.history.earlier(key, &a.target, at, offset, window);
            if !found.is_empty() {
                evidence.push(Evidence {
                    flag: "repeat_issue".into(),
                    start: a.start,
                    end: a.end,
                    text: a.text.clone(),
                });
                earlier.extend(found.iter().map(|e| (e.at, e.id.to_string())));
            }
        }
        slot.history.record(key, &targets, at, offset, &c.id);
        slot.next = offset + 1;
        slot.dirty = true;
        earlier.sort();
        let mut ids: Vec<String> = Vec::with_capacity(earlier.len());
        for (_, id) in earlier {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if let Some(m) = &self.metrics {
            if !ids.is_empty() {
                m.repeat_issues.inc();
            }
        }
        c.nlp.repeat_of = Some(ids);
        if !evidence.is_empty() {
            c.nlp.flags.get_or_insert_with(Vec::new).extend(evidence);
        }
        Ok(())
    }
}

impl Operator for RepeatOperator {
    fn name(&self) -> &str {
        "history"
    }

    fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
        for c in &mut batch.comments {
            self.check(c)?;
        }
        Ok(())
    }

    fn on_start(&mut self, metrics: &crate::metrics::Metrics) -> Result<(), OperatorError> {
        self.metrics = Some(metrics.clone());
        Ok(())
    }

    /// Saves every partition's history that changed, first forgetting
    /// entries older than the window.
    fn before_commit(&mut self) -> Result<(), OperatorError> {
        let window = self.window_us;
        for ((topic, partition), slot) in self.slots.iter_mut().filter(|(_, s)| s.dirty) {
            slot.history.prune(window);
            slot.history
                .save(&self.store, &history_path(topic, *partition))
                .map_err(Self::failed)?;
            slot.dirty = false;
        }
        if let Some(m) = &self.metrics {
            let n: usize = self.slots.values().map(|s| s.history.customers()).sum();
            m.history_customers.set(n as i64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::{Aspect, SourceCoords};
    use chrono::{Duration, TimeZone, Utc};

    /// A comment by `customer` at `day` with aspects `(target, polarity)`.
    fn comment(
        offset: i64,
        customer: Option<&str>,
        day: i64,
        aspects: &[(&str, Polarity)],
    ) -> Comment {
        let coords = SourceCoords {
            topic: "fb".into(),
            partition: 0,
            offset,
            kafka_timestamp: None,
        };
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap() + Duration::days(day);
        let mut c = Comment::new(coords, format!("c{offset}"), "text".into(), at, at);
        c.customer_id = customer.map(String::from);
        c.nlp.flags = Some(Vec::new());
        c.nlp.aspects = Some(
            aspects
                .iter()
                .map(|(t, p)| Aspect {
                    target: (*t).into(),
                    polarity: *p,
                    confidence: 0.9,
                    start: 0,
                    end: 4,
                    text: "text".into(),
                    vector: None,
                    theme: None,
                })
                .collect(),
        );
        c
    }

    fn run(op: &mut RepeatOperator, comments: Vec<Comment>) -> Vec<Comment> {
        let mut b = CommentBatch {
            comments,
            ..Default::default()
        };
        op.process_batch(&mut b).unwrap();
        b.comments
    }

    fn repeat_of(c: &Comment) -> Option<Vec<&str>> {
        c.nlp
            .repeat_of
            .as_ref()
            .map(|v| v.iter().map(String::as_str).collect())
    }

    fn raised(c: &Comment) -> bool {
        c.nlp
            .flags
            .iter()
            .flatten()
            .any(|e| e.flag == "repeat_issue")
    }

    use Polarity::{Negative as Neg, Positive as Pos};

    /// The stream of the issue: one customer complains about the product
    /// three times in ten days; another customer, another target, praise
    /// and a comment without a customer are not repeats.
    fn stream() -> Vec<Comment> {
        vec![
            comment(0, Some("ann"), 0, &[("product", Neg)]),
            comment(1, Some("bob"), 1, &[("product", Neg)]),
            comment(2, Some("ann"), 4, &[("staff", Pos), ("product", Neg)]),
            comment(3, Some("cat"), 5, &[("product", Pos)]),
            comment(4, Some("bob"), 6, &[("staff", Neg)]),
            comment(5, None, 7, &[("product", Neg)]),
            comment(6, Some("ann"), 9, &[("product", Neg)]),
            comment(7, Some("cat"), 9, &[("product", Neg)]),
        ]
    }

    #[test]
    fn the_second_and_third_complaint_are_repeats_with_the_earlier_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut op =
            RepeatOperator::new(OutputStore::local(dir.path()).unwrap(), Duration::days(30));
        let out = run(&mut op, stream());
        let got: Vec<Option<Vec<&str>>> = out.iter().map(repeat_of).collect();
        assert_eq!(
            got,
            [
                Some(vec![]),
                Some(vec![]),
                Some(vec!["c0"]),
                Some(vec![]),
                Some(vec![]),
                None,
                Some(vec!["c0", "c2"]),
                Some(vec![]),
            ]
        );
        let flagged: Vec<bool> = out.iter().map(raised).collect();
        assert_eq!(
            flagged,
            [false, false, true, false, false, false, true, false]
        );
        // The evidence is the complaint's own clause.
        let ev = out[2].nlp.flags.as_ref().unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].start, ev[0].end, ev[0].text.as_str()),
            (0, 4, "text")
        );
    }

    #[test]
    fn a_window_shorter_than_the_gap_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut op =
            RepeatOperator::new(OutputStore::local(dir.path()).unwrap(), Duration::days(3));
        let out = run(&mut op, stream());
        assert!(out.iter().all(|c| !raised(c)));
        assert_eq!(
            repeat_of(&out[6]),
            Some(vec![]),
            "ann's complaints are 4 and 5 days apart"
        );
    }

    #[test]
    fn a_restart_or_a_replay_gives_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let all = stream();
        let whole = run(
            &mut RepeatOperator::new(OutputStore::local(dir.path()).unwrap(), Duration::days(30)),
            all.clone(),
        );
        let dir = tempfile::tempdir().unwrap();
        // First instance reads offsets 0..=4 and saves (a commit) ...
        let mut first =
            RepeatOperator::new(OutputStore::local(dir.path()).unwrap(), Duration::days(30));
        let a = run(&mut first, all[..5].to_vec());
        first.before_commit().unwrap();
        // ... then reads 5..=6 and saves, but dies before their files are
        // committed: the saved history is ahead of the files.
        run(&mut first, all[5..7].to_vec());
        first.before_commit().unwrap();
        drop(first);
        // A new instance resumes after offset 4: same rows as one pass.
        let mut second =
            RepeatOperator::new(OutputStore::local(dir.path()).unwrap(), Duration::days(30));
        let b = run(&mut second, all[5..].to_vec());
        let again: Vec<_> = a.iter().chain(&b).map(repeat_of).collect();
        assert_eq!(again, whole.iter().map(repeat_of).collect::<Vec<_>>());
        // The same instance rewinding (an assignment lost and read again).
        let c = run(&mut second, all[2..].to_vec());
        assert_eq!(
            c.iter().map(repeat_of).collect::<Vec<_>>(),
            whole[2..].iter().map(repeat_of).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_partition_read_elsewhere_in_between_is_reloaded_from_its_file() {
        // On a folder, and on an object store (the in-memory one stands in
        // for a bucket) shared by the two instances.
        let dir = tempfile::tempdir().unwrap();
        let bucket = std::sync::Arc::new(object_store::memory::InMemory::new());
        let stores: [Box<dyn Fn() -> OutputStore>; 2] = [
            Box::new(|| OutputStore::local(dir.path()).unwrap()),
            Box::new(|| OutputStore::with_store(bucket.clone(), dir.path()).unwrap()),
        ];
        for store in stores {
            let all = stream();
            let mut here = RepeatOperator::new(store(), Duration::days(30));
            run(&mut here, all[..2].to_vec());
            here.before_commit().unwrap();
            // Another instance owns the partition for offsets 2..=5.
            let mut there = RepeatOperator::new(store(), Duration::days(30));
            run(&mut there, all[2..6].to_vec());
            there.before_commit().unwrap();
            // It comes back here at offset 6: ann's complaint at 2 is known.
            let out = run(&mut here, all[6..].to_vec());
            assert_eq!(repeat_of(&out[0]), Some(vec!["c0", "c2"]));
        }
    }
}
