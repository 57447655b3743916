//! The action queue end to end on librdkafka's mock cluster: flagged
//! comments reach `actions/` and the action topic exactly once each, across
//! a restart of the job in the middle of the stream.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use verbatim::source::kafka_mock::MockKafka;

/// `column` of every row of a table, with the row's comment id.
fn read_table(root: &Path, table: &str, id_col: &str, col: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let Ok(days) = std::fs::read_dir(root.join(table)) else {
        return out;
    };
    for day in days.flatten() {
        for f in std::fs::read_dir(day.path()).unwrap().flatten() {
            if !f.file_name().to_string_lossy().ends_with(".parquet") {
                continue;
            }
            let rd = ParquetRecordBatchReaderBuilder::try_new(File::open(f.path()).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for b in rd {
                let b = b.unwrap();
                let ids = b.column_by_name(id_col).unwrap().as_string::<i32>().clone();
                let vals = b.column_by_name(col).unwrap().clone();
                for i in 0..b.num_rows() {
                    let v = match vals.data_type() {
                        arrow::datatypes::DataType::List(_) => {
                            let l = vals.as_list::<i32>();
                            (!l.is_null(i)).then(|| {
                                let items = l.value(i);
                                let s = items.as_string::<i32>();
                                (0..s.len())
                                    .map(|j| s.value(j))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                        }
                        _ => {
                            let s = vals.as_string::<i32>();
                            (!s.is_null(i)).then(|| s.value(i).to_string())
                        }
                    };
                    out.push((ids.value(i).to_string(), v));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flagged_comment_is_sent_once_across_a_restart() {
    let Some(nlp) = nlp_config() else { return };
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    mock.create_topic("fb-actions", 2).unwrap();
    let sent = messages(390, 3, "act");
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        let mut c = config(mock.bootstrap_servers(), "fb", "g-act", dir.path());
        c.nlp = Some(nlp.clone());
        c.themes.enabled = false;
        c.actions.topic = Some("fb-actions".into());
        c
    };
    // The job stops in the middle of the stream (after the first 195
    // messages) and is started again while the rest arrives.
    produce(mock.bootstrap_servers(), "fb", &sent[..195]).await;
    let first = run_until(cfg(), 195).await;
    assert_eq!(first.messages, 195, "{first:?}");
    produce(mock.bootstrap_servers(), "fb", &sent[195..]).await;
    let second = run_until(cfg(), 195).await;
    assert_eq!(
        second.messages, 195,
        "a restart re-read or skipped messages"
    );
    assert!(first.ranges > 0 && second.ranges > 0);

    // Which comments should be queued, from comments/ alone.
    let queued = [
        "safety_risk",
        "contact_requested",
        "repeat_issue",
        "score_solicited",
    ];
    let want: BTreeSet<String> = read_table(dir.path(), "comments", "id", "flags")
        .into_iter()
        .filter(|(_, f)| {
            f.as_deref()
                .is_some_and(|f| f.split(',').any(|x| queued.contains(&x)))
        })
        .map(|(id, _)| id)
        .collect();
    assert!(
        want.len() > 100,
        "the sample raises flags on most comments: {}",
        want.len()
    );
    // A comment that raised only survey_fatigue or nothing is not queued.
    let table: Vec<String> = read_table(dir.path(), "actions", "comment_id", "priority_label")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        table.len(),
        want.len(),
        "actions/ has one row per queued comment"
    );
    assert_eq!(table.iter().cloned().collect::<BTreeSet<_>>(), want);

    let records = read_topic(
        mock.bootstrap_servers(),
        "fb-actions",
        2,
        want.len(),
        Duration::from_secs(60),
    );
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for (k, v) in &records {
        let key = String::from_utf8(k.clone()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(v).unwrap();
        assert_eq!(json["comment_id"], key.as_str(), "key = comment id");
        assert!(
            json["evidence"].as_array().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
        assert!(
            json["staff_id"]
                .as_str()
                .is_some_and(|s| s.starts_with('S')),
            "{json}"
        );
        let p = json["priority"].as_u64().unwrap();
        let flags: Vec<&str> = json["flags"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f.as_str())
            .collect();
        if flags.contains(&"safety_risk") {
            assert_eq!(p, 1);
        } else if flags.contains(&"contact_requested") && flags.contains(&"repeat_issue") {
            assert_eq!(p, 2);
        }
        *per_key.entry(key).or_default() += 1;
    }
    let dup: Vec<_> = per_key.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dup.is_empty(), "sent more than once: {dup:?}");
    assert_eq!(per_key.keys().cloned().collect::<BTreeSet<_>>(), want);
}
