//! The action queue end to end on librdkafka's mock cluster: flagged
//! comments reach `actions/` and the action topic exactly once each, across
//! a restart of the job in the middle of the stream.

mod common;
mod support;

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

/// The same customer complaining about the product three times in ten days,
/// with the job restarted between the second and third complaint: the 2nd
/// and 3rd comments name the earlier ones in `repeat_of` and are queued;
/// another customer, another target, praise, a comment without a customer
/// and a complaint outside the window are not repeats. Read back by DuckDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_complaining_again_is_found_from_history_across_a_restart() {
    let Some(nlp) = nlp_config() else { return };
    let Some(py) = support::python_with("duckdb") else {
        return;
    };
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 1).unwrap();
    let rows: [(&str, Option<&str>, u32, &str); 9] = [
        (
            "r0",
            Some("ann"),
            1,
            "The app keeps crashing every time I open it.",
        ),
        (
            "r1",
            Some("bob"),
            1,
            "The app keeps crashing when I log in.",
        ),
        (
            "r2",
            Some("ann"),
            3,
            "The app crashed this morning and I lost my work.",
        ),
        (
            "r3",
            Some("cat"),
            4,
            "The agent on the phone was rude to me.",
        ),
        (
            "r4",
            Some("bob"),
            5,
            "The engineer was rude and left a mess.",
        ),
        // The job restarts here.
        (
            "r5",
            Some("cat"),
            6,
            "The app is great, it works perfectly.",
        ),
        (
            "r6",
            Some("ann"),
            10,
            "The app keeps freezing and crashing.",
        ),
        ("r7", None, 10, "The app keeps crashing."),
        (
            "r8",
            Some("ann"),
            55,
            "The app keeps crashing on my new phone.",
        ),
    ];
    let sent: Vec<Sent> = rows
        .iter()
        .map(|(id, customer, day, text)| {
            let at = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap()
                + chrono::Duration::days(i64::from(*day) - 1);
            let mut v = serde_json::json!({
                "id": id, "text": text, "created_at": format!("{at}T12:00:00Z"),
            });
            if let Some(c) = customer {
                v["customer_id"] = (*c).into();
            }
            Sent {
                partition: 0,
                key: customer.map(|c| c.as_bytes().to_vec()),
                value: v.to_string().into_bytes(),
                reject: None,
                id: id.to_string(),
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        let mut c = config(mock.bootstrap_servers(), "fb", "g-repeat", dir.path());
        c.nlp = Some(nlp.clone());
        c.themes.enabled = false;
        c
    };
    produce(mock.bootstrap_servers(), "fb", &sent[..5]).await;
    assert_eq!(run_until(cfg(), 5).await.messages, 5);
    assert!(
        dir.path().join("history/fb-p0.parquet").is_file(),
        "the history is saved with the files"
    );
    produce(mock.bootstrap_servers(), "fb", &sent[5..]).await;
    assert_eq!(run_until(cfg(), 4).await.messages, 4, "resumed after r4");
    // The running job's status task wrote the queue's statuses (its first
    // run, at start, saw r2 queued by the first run).
    let snapshot = dir.path().join("action_status/action_status.parquet");
    wait_for(
        Duration::from_secs(20),
        "action_status/ from the job",
        || snapshot.is_file(),
    )
    .await;

    let script = r#"
import duckdb, json, sys
root = sys.argv[1]
rows = duckdb.sql(f"""
    SELECT id, customer_id, repeat_of, repeat_issue
    FROM read_parquet('{root}/comments/*/*.parquet') ORDER BY id""").fetchall()
actions = duckdb.sql(f"""
    SELECT comment_id FROM read_parquet('{root}/actions/*/*.parquet')""").fetchall()
print(json.dumps({"rows": rows, "actions": [a[0] for a in actions]}))
"#;
    let out = support::run_ok(std::process::Command::new(py).args([
        "-c",
        script,
        &dir.path().to_string_lossy(),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut repeat_of: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    let mut customers: BTreeMap<String, Option<String>> = BTreeMap::new();
    for r in v["rows"].as_array().unwrap() {
        let id = r[0].as_str().unwrap().to_string();
        customers.insert(id.clone(), r[1].as_str().map(String::from));
        repeat_of.insert(
            id.clone(),
            r[2].as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect()),
        );
        if r[2].as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(r[3], true, "{id}: repeat_of raises repeat_issue");
        }
    }
    let ids = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let want: BTreeMap<String, Option<Vec<String>>> = [
        ("r0", ids(&[])),
        ("r1", ids(&[])),
        ("r2", ids(&["r0"])),
        ("r3", ids(&[])),
        ("r4", ids(&[])),
        ("r5", ids(&[])),
        ("r6", ids(&["r0", "r2"])),
        ("r7", None),
        ("r8", ids(&[])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(repeat_of, want);
    // Only hashes reach disk, the same for one customer.
    let ann = customers["r0"].clone().unwrap();
    assert!(
        ann.len() == 32 && ann.chars().all(|c| c.is_ascii_hexdigit()),
        "{ann}"
    );
    assert_eq!(customers["r6"].as_deref(), Some(ann.as_str()));
    assert_ne!(customers["r1"].as_deref(), Some(ann.as_str()));
    assert_eq!(customers["r7"], None);
    let queued: BTreeSet<&str> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(queued.contains("r2") && queued.contains("r6"), "{queued:?}");
}
