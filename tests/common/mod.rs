//! Helpers shared by the integration tests: realistic payloads with known bad
//! ones mixed in, and an exactness check of the output tables.
#![allow(dead_code)]

pub mod s3;
pub mod tansu;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, Int32Array, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use verbatim::config::{KafkaConfig, PipelineConfig};

/// One produced message and what the pipeline must make of it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// `None`: a comment with id `id`; `Some(reason)`: a rejection.
    pub reject: Option<&'static str>,
    pub id: String,
}

impl Sent {
    /// A well-formed JSON message keyed by its id.
    pub fn good(partition: i32, id: String, v: &serde_json::Value) -> Sent {
        Sent {
            partition,
            key: Some(id.clone().into_bytes()),
            value: v.to_string().into_bytes(),
            reject: None,
            id,
        }
    }

    /// A malformed message, unkeyed, that must be rejected for `reason`.
    pub fn bad(partition: i32, id: String, value: &[u8], reason: &'static str) -> Sent {
        Sent {
            partition,
            key: None,
            value: value.to_vec(),
            reject: Some(reason),
            id,
        }
    }
}

const TEXTS: [&str; 6] = [
    "The engineer was lovely but the app keeps crashing",
    "Third time I have called about my bill, please call me back",
    "Delivery was fast and the driver was polite",
    "Связь пропадает каждый вечер, перезвоните мне",
    "The room was dirty and overpriced",
    "Staff asked me to give a 10 on the survey",
];

/// `n` messages over `partitions` partitions; every 13th is malformed in
/// one of several ways, each with the reason the decoder must give.
pub fn messages(n: usize, partitions: i32, tag: &str) -> Vec<Sent> {
    let bad: [(&[u8], &str); 7] = [
        (b"{not json", "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (
            b"{\"id\": \"x\", \"body\": \"wrong field\"}",
            "missing_text",
        ),
        (b"{\"text\": \"  \"}", "empty_text"),
        (b"{\"text\": \"caf\xe9\"}", "invalid_utf8"),
        (b"{\"text\": \"ok\", \"score\": \"ten\"}", "wrong_type"),
        (
            b"{\"text\": \"ok\", \"created_at\": \"someday\"}",
            "bad_timestamp",
        ),
    ];
    (0..n)
        .map(|i| {
            let partition = (i % partitions as usize) as i32;
            let id = format!("{tag}-{i}");
            if i % 13 == 7 {
                let (v, reason) = bad[(i / 13) % bad.len()];
                Sent::bad(partition, id, v, reason)
            } else {
                let day = 1 + (i % 5);
                let v = serde_json::json!({
                    "id": id,
                    "text": format!("{} (#{i})", TEXTS[i % TEXTS.len()]),
                    "created_at": format!("2026-10-0{day}T12:00:00Z"),
                    "score": (i % 11) as f64,
                    "staff_id": format!("S{}", i % 7),
                });
                Sent::good(partition, id, &v)
            }
        })
        .collect()
}

/// `n` follow-up events (`[responses]`) over `partitions` partitions; every
/// 9th is malformed, each with the reason the decoder must give.
pub fn response_messages(n: usize, partitions: i32, tag: &str) -> Vec<Sent> {
    let bad: [(&[u8], &str); 5] = [
        (
            b"{\"comment_id\": \"c1\", \"outcome\": \"called\"}",
            "bad_value",
        ),
        (
            b"{\"outcome\": \"resolved\", \"agent\": \"A1\"}",
            "missing_field",
        ),
        (b"{\"comment_id\": \"c1\"}", "missing_field"),
        (
            b"{\"comment_id\": \"c1\", \"outcome\": \"contacted\", \"at\": \"soon\"}",
            "bad_timestamp",
        ),
        (b"not an event", "not_json"),
    ];
    let outcomes = ["contacted", "resolved", "no_answer", "declined"];
    (0..n)
        .map(|i| {
            let partition = (i % partitions as usize) as i32;
            let id = format!("{tag}-r{i}");
            if i % 9 == 4 {
                let (v, reason) = bad[(i / 9) % bad.len()];
                return Sent::bad(partition, id, v, reason);
            }
            // Half name the comment, half the action (the same id).
            let field = if i % 2 == 0 {
                "comment_id"
            } else {
                "action_id"
            };
            let v = serde_json::json!({
                "id": id,
                field: format!("{tag}-{}", i * 3),
                "at": format!("2026-10-0{}T1{}:00:00+01:00", 1 + i % 5, i % 10),
                "channel": "phone",
                "outcome": outcomes[i % outcomes.len()],
                "agent": format!("A{}", i % 4),
                "note": "Called back, sorted.",
            });
            Sent::good(partition, id, &v)
        })
        .collect()
}

/// Produces the messages; returns each one's offset, in input order.
pub async fn produce(bootstrap: &str, topic: &str, msgs: &[Sent]) -> Vec<i64> {
    let mut items = Vec::with_capacity(msgs.len());
    for m in msgs {
        items.push((m.partition, m.key.clone(), m.value.clone()));
    }
    let delivered = verbatim::source::kafka_mock::produce_all(bootstrap, topic, items)
        .await
        .expect("produce");
    let mut out = Vec::with_capacity(msgs.len());
    for (_, o) in delivered {
        out.push(o);
    }
    out
}

/// A pipeline reading `topic` with group `group` into `root`, batching small
/// so several batches and commits happen.
pub fn config(bootstrap: &str, topic: &str, group: &str, root: &Path) -> PipelineConfig {
    let mut cfg = PipelineConfig {
        name: "test".into(),
        ..PipelineConfig::default()
    };
    let mut props = std::collections::BTreeMap::new();
    props.insert("session.timeout.ms".to_string(), "6000".to_string());
    props.insert("heartbeat.interval.ms".to_string(), "500".to_string());
    cfg.kafka = Some(KafkaConfig {
        properties: props,
        ..KafkaConfig::new(bootstrap, vec![topic.to_string()], group)
    });
    cfg.batch.max_records = 100;
    cfg.batch.max_wait_ms = 100;
    cfg.output.root = root.to_path_buf();
    cfg.output.max_file_bytes = 64 * 1024;
    cfg.output.max_file_age_secs = 1;
    cfg
}

/// One row as read back from the output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Row {
    pub partition: i32,
    pub offset: i64,
    /// Comment id, or the reject reason for `rejected/` rows.
    pub value: String,
}

/// Everything in the output tables.
#[derive(Debug, Default)]
pub struct Output {
    pub comments: Vec<Row>,
    pub rejected: Vec<Row>,
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    verbatim::cli::demo::parquet_files(dir)
}

fn col<'a, T: 'static>(b: &'a arrow::record_batch::RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("column {name} type"))
}

/// Reads both tables back with the parquet crate's reader.
pub fn read_output(root: &Path) -> Output {
    read_output_of(root, None, ("comments", "id"))
}

/// Reads back one topic's rows (every topic's for `None`): `good` names the
/// table its clean messages go to and the id column, e.g. `("responses",
/// "response_id")`; `rejected/` is read too.
pub fn read_output_of(root: &Path, topic: Option<&str>, good: (&str, &str)) -> Output {
    let mut out = Output::default();
    for (table, value_col) in [good, ("rejected", "reason")] {
        for f in parquet_files(&root.join(table)) {
            let r = ParquetRecordBatchReaderBuilder::try_new(File::open(&f).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for b in r {
                let b = b.unwrap();
                let t = col::<StringArray>(&b, "source_topic");
                let p = col::<Int32Array>(&b, "source_partition");
                let o = col::<Int64Array>(&b, "source_offset");
                let v = col::<StringArray>(&b, value_col);
                for i in 0..b.num_rows() {
                    if topic.is_some_and(|want| t.value(i) != want) {
                        continue;
                    }
                    let row = Row {
                        partition: p.value(i),
                        offset: o.value(i),
                        value: v.value(i).to_string(),
                    };
                    if table == good.0 {
                        out.comments.push(row);
                    } else {
                        out.rejected.push(row);
                    }
                }
            }
        }
    }
    out
}

/// Asserts that every sent message is in the output exactly once, as the
/// right kind of row.
pub fn assert_exact(root: &Path, sent: &[Sent], offsets: &[i64]) {
    assert_exact_in(root, None, ("comments", "id"), sent, offsets);
}

/// [`assert_exact`] for one topic whose clean messages go to `good`
/// (table, id column), e.g. follow-up events into `responses/`.
pub fn assert_exact_in(
    root: &Path,
    topic: Option<&str>,
    good: (&str, &str),
    sent: &[Sent],
    offsets: &[i64],
) {
    let out = read_output_of(root, topic, good);
    let mut want_comments = Vec::new();
    let mut want_rejected = Vec::new();
    for (m, &o) in sent.iter().zip(offsets) {
        let row = Row {
            partition: m.partition,
            offset: o,
            value: m.reject.map(str::to_string).unwrap_or_else(|| m.id.clone()),
        };
        if m.reject.is_some() {
            want_rejected.push(row);
        } else {
            want_comments.push(row);
        }
    }
    let dups = |rows: &[Row]| {
        let mut seen = HashSet::new();
        rows.iter()
            .filter(|r| !seen.insert((r.partition, r.offset)))
            .count()
    };
    assert_eq!(dups(&out.comments), 0, "duplicate comment rows");
    assert_eq!(dups(&out.rejected), 0, "duplicate rejected rows");
    let ids: HashSet<_> = out.comments.iter().map(|r| &r.value).collect();
    assert_eq!(ids.len(), out.comments.len(), "comment ids are not unique");
    let mut got_c = out.comments.clone();
    let mut got_r = out.rejected.clone();
    for v in [
        &mut got_c,
        &mut got_r,
        &mut want_comments,
        &mut want_rejected,
    ] {
        v.sort();
    }
    assert_eq!(
        got_c.len(),
        want_comments.len(),
        "comment rows = messages - rejected"
    );
    assert_eq!(
        got_c, want_comments,
        "comment rows differ from what was produced"
    );
    assert_eq!(got_r, want_rejected, "rejected rows or reasons differ");
}

/// Per partition, the offset after the last produced message.
pub fn ends(sent: &[Sent], offsets: &[i64]) -> BTreeMap<i32, i64> {
    let mut m = BTreeMap::new();
    for (s, &o) in sent.iter().zip(offsets) {
        let e = m.entry(s.partition).or_insert(0);
        *e = (*e).max(o + 1);
    }
    m
}

/// True when the committed files of every partition reach its end.
pub fn files_reach(root: &Path, topic: &str, ends: &BTreeMap<i32, i64>) -> bool {
    ends.iter().all(|(&p, &end)| {
        verbatim::sink::files::scan_progress(root, topic, p)
            .ok()
            .and_then(|pr| pr.next_offset)
            .is_some_and(|n| n >= end)
    })
}

/// Waits (bounded) until `cond` holds; panics with `what` after `limit`.
pub async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The group's committed offsets for `topic`'s partitions.
pub fn group_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> HashMap<i32, i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let res = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let out = res
        .elements()
        .iter()
        .map(|e| {
            (
                e.partition(),
                match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                },
            )
        })
        .collect();
    drop(res);
    out
}

/// `[nlp]` for the tests: all-MiniLM-L6-v2 (the faster model; the shipped
/// pipelines' multilingual default is tested through them), its heads, int8. `None`
/// (the test skips) when `bash models/setup.sh` has not run, unless
/// `VERBATIM_REQUIRE_SETUP=1`, when that is a failure.
pub fn nlp_config() -> Option<verbatim::config::NlpConfig> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let c = verbatim::config::NlpConfig {
        model: "all-MiniLM-L6-v2".into(),
        models_dir: root.join("models"),
        cache_dir: root.join(".cache/models"),
        heads_dir: root.join("models/heads"),
        onnxruntime_library: root.join(".cache/onnxruntime/libonnxruntime.so"),
        ..verbatim::config::NlpConfig::default()
    };
    if c.cache_dir
        .join("all-MiniLM-L6-v2/model.int8.onnx")
        .is_file()
    {
        return Some(c);
    }
    assert!(
        !std::env::var("VERBATIM_REQUIRE_SETUP").is_ok_and(|v| v == "1"),
        "model files missing: run `bash models/setup.sh`"
    );
    eprintln!("skipping: run `bash models/setup.sh` first");
    None
}

/// Every record of `topic` (all partitions), read from the beginning until
/// `want` arrived or `limit` passed: `(key, value)`.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    limit: Duration,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    while got.len() < want && start.elapsed() < limit {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            got.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    // Anything beyond `want` (a duplicate) shows up within a short grace.
    let grace = std::time::Instant::now();
    while grace.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            got.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    got
}

/// Runs one pipeline until its instance has read `n` messages (within
/// three minutes), then stops it.
pub async fn run_until(cfg: PipelineConfig, n: u64) -> verbatim::pipeline::RunSummary {
    let metrics = verbatim::metrics::Metrics::new();
    let seen = metrics.messages.clone();
    let limit = Duration::from_secs(180);
    let shutdown =
        async move { wait_for(limit, "messages to be consumed", || seen.get() >= n).await };
    verbatim::pipeline::PipelineBuilder::new(cfg)
        .metrics(metrics)
        .run_kafka(shutdown)
        .await
        .expect("pipeline")
}

/// One blocking HTTP GET on loopback: (status code, body); `None` when
/// nothing listens or the answer does not parse.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|b| b.1.to_string())?;
    Some((code, body))
}

/// The end of a test pipeline file for a `verbatim run` child: small
/// batches, files committed every second under `root`, metrics on `http`.
pub fn pipeline_tail(root: &Path, http: std::net::SocketAddr) -> String {
    format!(
        "[batch]\nmax_records = 100\nmax_wait_ms = 100\n[output]\nroot = \"{}\"\nmax_file_age_secs = 1\n[metrics]\nlisten = \"{http}\"\n",
        root.display()
    )
}

/// Resident memory of a (child) process, in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
