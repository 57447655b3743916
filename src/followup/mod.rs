//! Closing the loop on the action queue: which queued comments were
//! answered, how fast, and which are overdue.
//!
//! - [`status`]: the status rules and the SLA arithmetic, over plain rows;
//! - [`table`]: reading `actions/` and `responses/` back and writing the
//!   `action_status/` snapshot;
//! - [`publish`] and [`spawn_status_task`]: the stream job's periodic run,
//!   which keeps `verbatim_actions_overdue{priority}` and the snapshot fresh.
//!
//! `verbatim actions status` (in `cli/actions.rs`) runs the same on demand.

pub mod status;
pub mod table;

use std::time::Duration;

use crate::metrics::{Metrics, PriorityLabel};
use crate::sink::store::OutputStore;
use status::{Sla, Status, StatusReport};

pub use crate::metrics::PRIORITY_LABELS as PRIORITIES;

/// Sets `verbatim_actions_overdue{priority}` from a report (every priority,
/// zeros included, so a cleared queue reads 0 rather than a stale value).
pub fn publish(metrics: &Metrics, report: &StatusReport) {
    let counts = report.counts();
    for (i, label) in PRIORITIES.iter().enumerate() {
        let n = counts
            .get(&((i + 1) as u8, Status::Overdue))
            .copied()
            .unwrap_or(0);
        metrics
            .actions_overdue
            .get_or_create(&PriorityLabel {
                priority: (*label).to_string(),
            })
            .set(n as i64);
    }
}

/// Recomputes the statuses in `store` every `every` (on a blocking
/// thread, apart from the event loop), publishing the metric and writing
/// the snapshot; a failed run is logged and retried at the next tick. A
/// bucket's `actions/` and `responses/` are read from a local copy that
/// each run brings up to date (new files only).
pub fn spawn_status_task(
    store: OutputStore,
    sla: Sla,
    every: Duration,
    metrics: Metrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (store, metrics) = (store.clone(), metrics.clone());
            let run = tokio::task::spawn_blocking(move || {
                let root = store.readable(&table::STATUS_INPUTS)?;
                let report = table::status_of(&root, &sla, chrono::Utc::now())?;
                publish(&metrics, &report);
                if !report.actions.is_empty() {
                    table::write_status(&store, &report)?;
                }
                Ok::<_, crate::sink::read::ReadError>(report.actions.len())
            })
            .await;
            match run {
                Ok(Ok(n)) => tracing::debug!(actions = n, "action statuses refreshed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "action statuses: will retry"),
                Err(e) => tracing::warn!(error = %e, "action statuses: worker failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn the_overdue_gauge_has_every_priority_and_zeroes_cleared_ones() {
        let m = Metrics::new();
        let at = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
        let a = |id: &str, p: u8| status::ActionRow {
            comment_id: id.into(),
            priority: p,
            event_time: at,
            ..Default::default()
        };
        let sla = Sla([chrono::Duration::hours(1); 4]);
        let late = at + chrono::Duration::hours(2);
        let r = status::compute(&[a("x", 1), a("y", 1), a("z", 3)], &[], &sla, late);
        publish(&m, &r);
        let text = m.render();
        assert!(
            text.contains("verbatim_actions_overdue{priority=\"urgent\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("verbatim_actions_overdue{priority=\"normal\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("verbatim_actions_overdue{priority=\"high\"} 0"),
            "{text}"
        );
        publish(&m, &status::compute(&[], &[], &sla, late));
        assert!(m
            .render()
            .contains("verbatim_actions_overdue{priority=\"urgent\"} 0"));
    }

    /// Writes one committed-looking file of `table` in `store`.
    fn write(store: &OutputStore, table: &str, batch: &arrow::record_batch::RecordBatch) {
        let bytes = crate::sink::files::parquet_bytes(batch).unwrap();
        store
            .put(
                &format!("{table}/dt=2026-11-02/t-p0-o1-1-1of1.parquet"),
                bytes,
            )
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_job_task_reads_the_tables_sets_the_gauge_and_writes_the_snapshot() {
        // On a folder, and on an object store (the in-memory one stands in
        // for a bucket).
        let dir = tempfile::tempdir().unwrap();
        let folder = OutputStore::local(&dir.path().join("out")).unwrap();
        let bucket = OutputStore::with_store(
            std::sync::Arc::new(object_store::memory::InMemory::new()),
            dir.path(),
        )
        .unwrap();
        for store in [folder, bucket] {
            status_task_round(store).await;
        }
    }

    async fn status_task_round(store: OutputStore) {
        use crate::comment::{Comment, Evidence, Outcome, Response, SourceCoords};
        use crate::sink::schema;
        let stamp = schema::Stamp {
            pipeline: "p".into(),
            pipeline_version: "v".into(),
            embedding_dim: None,
            mention_embedding_dim: None,
        };
        let coords = |offset| SourceCoords {
            topic: "t".into(),
            partition: 0,
            offset,
            kafka_timestamp: None,
        };
        let at = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        let comment = |id: &str, flag: &str| {
            let mut c = Comment::new(coords(1), id.into(), "t".into(), at, at);
            c.nlp.flags = Some(vec![Evidence {
                flag: flag.into(),
                start: 0,
                end: 1,
                text: "t".into(),
            }]);
            c
        };
        let (safety, contact) = (
            comment("a", "safety_risk"),
            comment("b", "contact_requested"),
        );
        let rules = crate::sink::actions::ActionRules::new(
            &crate::config::DEFAULT_ACTION_FLAGS.map(String::from),
        );
        let rows: Vec<_> = [&safety, &contact]
            .into_iter()
            .filter_map(|c| Some((c, rules.action(c)?)))
            .collect();
        write(
            &store,
            "actions",
            &schema::actions_batch(&rows, &stamp).unwrap(),
        );
        let answer = Response {
            coords: coords(2),
            id: "e1".into(),
            comment_id: "b".into(),
            at: at + chrono::Duration::hours(1),
            channel: None,
            outcome: Outcome::Contacted,
            agent: None,
            note: None,
            ingest_time: at,
        };
        write(
            &store,
            "responses",
            &schema::responses_batch(&[&answer], &stamp).unwrap(),
        );
        let m = Metrics::new();
        let sla = Sla([chrono::Duration::hours(4); 4]);
        let every = Duration::from_millis(50);
        let task = spawn_status_task(store.clone(), sla, every, m.clone());
        let start = std::time::Instant::now();
        while !(store.exists(table::STATUS_FILE).unwrap()
            && m.render().contains("priority=\"urgent\"} 1"))
        {
            assert!(start.elapsed() < Duration::from_secs(20), "{}", m.render());
            tokio::time::sleep(every).await;
        }
        task.abort();
        // The safety report is long overdue; the contact request was answered.
        let text = m.render();
        assert!(
            text.contains("verbatim_actions_overdue{priority=\"normal\"} 0"),
            "{text}"
        );
        let root = store.readable(&table::STATUS_INPUTS).unwrap();
        assert_eq!(table::read_actions(&root).unwrap().len(), 2);
        let r = table::status_of(&root, &sla, at + chrono::Duration::hours(2)).unwrap();
        let got: Vec<(&str, Status)> = r
            .actions
            .iter()
            .map(|a| (a.action.comment_id.as_str(), a.status))
            .collect();
        assert_eq!(got, [("a", Status::Open), ("b", Status::Answered)]);
    }
}
