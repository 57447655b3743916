//! `verbatim demo`: the whole stream job on a laptop, no broker to install.
//!
//! Starts librdkafka's mock cluster in-process, produces the bundled sample
//! (`demo_feedback.jsonl`: comments the team wrote across telecom, retail,
//! roadside assistance, hotels, delivery, banking and restaurants, some in
//! Russian, a few deliberately malformed), runs `pipelines/demo.toml` over
//! it, and reports what was written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use arrow::array::{Array, StringArray};

use super::report::{render_report, ReportFormat};
use crate::config::{KafkaConfig, PipelineConfig};
use crate::metrics::Metrics;
use crate::pipeline::{PipelineBuilder, PipelineError, RunSummary};
use crate::source::kafka_mock::{produce_all, MockError, MockKafka};

/// The bundled sample: one Kafka message value per line.
pub const SAMPLE: &[u8] = include_bytes!("demo_feedback.jsonl");

/// The demo pipeline file (brokers are replaced by the mock cluster's).
pub const DEMO_PIPELINE: &str = include_str!("../../pipelines/demo.toml");

/// Topic the demo produces to.
pub const DEMO_TOPIC: &str = "feedback";

/// Follow-up events a CRM sent for part of the queue (some on time, some
/// late, one twice, one malformed, one for a comment never queued).
pub const RESPONSES: &[u8] = include_bytes!("demo_responses.jsonl");

/// Topic the demo produces the follow-up events to (`[responses] topic`).
pub const DEMO_RESPONSES_TOPIC: &str = "feedback-responses";

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The mock cluster failed.
    #[error(transparent)]
    Mock(#[from] MockError),
    /// Producing the sample failed.
    #[error("producing the sample: {0}")]
    Produce(#[from] rdkafka::error::KafkaError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The output folder could not be prepared or read.
    #[error("{path}: {message}")]
    Output {
        /// The folder or file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Not every message arrived in time.
    #[error("the pipeline read {read} of {expected} messages within {secs} s")]
    Timeout {
        /// Messages read.
        read: u64,
        /// Messages produced.
        expected: u64,
        /// Seconds waited.
        secs: u64,
    },
}

/// Rows found in the output tables after the demo.
#[derive(Debug, Default, Clone)]
pub struct OutputSummary {
    /// Rows in `comments/`.
    pub comment_rows: usize,
    /// Files in `comments/`.
    pub comment_files: usize,
    /// Rows in `rejected/`.
    pub rejected_rows: usize,
    /// Rows in `responses/`.
    pub response_rows: usize,
    /// Files in `rejected/`.
    pub rejected_files: usize,
    /// Rejected rows by reason.
    pub reasons: BTreeMap<String, usize>,
    /// Comments by detected language.
    pub languages: BTreeMap<String, usize>,
    /// Comments raising each built-in flag.
    pub flags: BTreeMap<String, usize>,
    /// Comments whose text had PII replaced.
    pub redacted: usize,
    /// A few comments asking for a call back (text as written to disk).
    pub follow_up_examples: Vec<String>,
    /// Rows in `mentions/`.
    pub mention_rows: usize,
    /// Files in `mentions/`.
    pub mention_files: usize,
    /// Mentions by `target polarity`.
    pub mentions: BTreeMap<String, usize>,
    /// Comments by sentiment label (`not analysed` for nulls).
    pub sentiment: BTreeMap<String, usize>,
    /// The same per language: `language → label → comments`.
    pub sentiment_by_language: BTreeMap<String, BTreeMap<String, usize>>,
    /// A few Russian comments with what the analysis read in them:
    /// `(text, staff_sentiment, product_sentiment)`, `-` for none.
    pub russian_examples: Vec<(String, String, String)>,
    /// Comments with `blames_staff` / `blames_product` true.
    pub blames: BTreeMap<String, usize>,
    /// Comments not analysed, by `analysis_skipped`.
    pub skipped: BTreeMap<String, usize>,
    /// A few comments that praise staff and blame the product:
    /// `(text, staff_sentiment, product_sentiment)`.
    pub split_examples: Vec<(String, String, String)>,
    /// Comments per theme id, with the theme's label (from the theme
    /// snapshot when there is one, else the one its last row was written with).
    pub themes: BTreeMap<i32, (usize, String)>,
    /// Rows in `actions/` by priority label.
    pub actions: BTreeMap<String, usize>,
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Messages produced.
    pub produced: usize,
    /// The pipeline's own summary.
    pub run: RunSummary,
    /// The output read back from disk.
    pub output: OutputSummary,
    /// Output root.
    pub root: PathBuf,
}

/// The sample's lines as messages, spread over 3 partitions, keyed by id
/// where the line is a JSON object with one.
pub fn sample_messages() -> Vec<crate::source::kafka_mock::Produce> {
    SAMPLE
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let v = serde_json::from_slice::<serde_json::Value>(line).ok();
            let field = |name: &str| {
                v.as_ref()
                    .and_then(|v| v.get(name)?.as_str().map(|s| s.as_bytes().to_vec()))
            };
            // Keyed by customer where there is one, as a producer should
            // key them: one customer's comments share a partition, so the
            // history stage sees them all in order.
            match field("customer_id") {
                Some(c) => (key_partition(&c, 3), Some(c), line.to_vec()),
                None => ((i % 3) as i32, field("id"), line.to_vec()),
            }
        })
        .collect()
}

/// The partition a key goes to: a stable hash modulo the count, standing
/// in for a producer's keyed partitioner.
fn key_partition(key: &[u8], partitions: i32) -> i32 {
    (crate::comment::stable_hash(key) % partitions as u64) as i32
}

/// Runs the demo, writing under `root` (cleared first if it holds an earlier demo).
pub async fn run(root: &Path) -> Result<DemoReport, DemoError> {
    prepare_root(root)?;
    let mock = MockKafka::start(1)?;
    mock.create_topic(DEMO_TOPIC, 3)?;
    mock.create_topic(DEMO_RESPONSES_TOPIC, 1)?;
    let messages = sample_messages();
    let events: Vec<crate::source::kafka_mock::Produce> = RESPONSES
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| (0, None, l.to_vec()))
        .collect();
    let produced = messages.len() + events.len();
    produce_all(mock.bootstrap_servers(), DEMO_TOPIC, messages).await?;
    produce_all(mock.bootstrap_servers(), DEMO_RESPONSES_TOPIC, events).await?;

    let mut cfg = PipelineConfig::from_toml(DEMO_PIPELINE, Path::new("pipelines/demo.toml"))
        .map_err(PipelineError::from)?;
    let k = cfg
        .kafka
        .get_or_insert_with(|| KafkaConfig::new("", vec![DEMO_TOPIC.into()], "verbatim-demo"));
    k.brokers = mock.bootstrap_servers().to_string();
    cfg.output.root = root.to_path_buf();

    let metrics = Metrics::new();
    let seen = metrics.messages.clone();
    let expected = produced as u64;
    let secs = 120;
    let (timed_out_tx, timed_out_rx) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        let start = std::time::Instant::now();
        while seen.get() < expected {
            if start.elapsed() > Duration::from_secs(secs) {
                let _ = timed_out_tx.send(seen.get());
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let run = PipelineBuilder::new(cfg)
        .metrics(metrics)
        .run_kafka(shutdown)
        .await?;
    if let Ok(read) = timed_out_rx.await {
        return Err(DemoError::Timeout {
            read,
            expected,
            secs,
        });
    }
    drop(mock);
    let output = summarize_output(root)?;
    Ok(DemoReport {
        produced,
        run,
        output,
        root: root.to_path_buf(),
    })
}

fn prepare_root(root: &Path) -> Result<(), DemoError> {
    if !root.exists() {
        return Ok(());
    }
    let err = |message: String| DemoError::Output {
        path: root.to_path_buf(),
        message,
    };
    let entries = std::fs::read_dir(root).map_err(|e| err(e.to_string()))?;
    for e in entries {
        let e = e.map_err(|e| err(e.to_string()))?;
        let name = e.file_name();
        let known = [
            // The commit protocol's markers and staged parts.
            "_commits",
            "_staging",
            "comments",
            "rejected",
            "mentions",
            "themes",
            "theme_daily",
            "actions",
            "responses",
            "history",
            "action_status",
            "report.html",
            "report.md",
            "report.json",
        ];
        if !known.iter().any(|k| name == *k) {
            return Err(err(format!(
                "holds {:?}, which the demo did not write; refusing to clear it (pass another --output-root)",
                name
            )));
        }
    }
    std::fs::remove_dir_all(root).map_err(|e| err(e.to_string()))
}

/// Every record batch of one Parquet file.
fn read_batches(path: &Path) -> Result<Vec<arrow::record_batch::RecordBatch>, DemoError> {
    crate::sink::read::file_batches(path).map_err(|e| DemoError::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Counts rows, files and reject reasons under an output root.
pub fn summarize_output(root: &Path) -> Result<OutputSummary, DemoError> {
    let mut s = OutputSummary::default();
    for path in parquet_files(&root.join("mentions")) {
        for batch in read_batches(&path)? {
            s.mention_rows += batch.num_rows();
            let col = |n: &str| {
                batch
                    .column_by_name(n)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .cloned()
            };
            if let (Some(t), Some(p)) = (col("target"), col("polarity")) {
                for i in 0..t.len() {
                    *s.mentions
                        .entry(format!("{} {}", t.value(i), p.value(i)))
                        .or_default() += 1;
                }
            }
        }
        s.mention_files += 1;
    }
    for path in parquet_files(&root.join("actions")) {
        for batch in read_batches(&path)? {
            if let Some(p) = batch
                .column_by_name("priority_label")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            {
                for i in 0..p.len() {
                    *s.actions.entry(p.value(i).to_string()).or_default() += 1;
                }
            }
        }
    }
    for path in parquet_files(&root.join("responses")) {
        for batch in read_batches(&path)? {
            s.response_rows += batch.num_rows();
        }
    }
    for (table, is_rejected) in [("comments", false), ("rejected", true)] {
        for path in parquet_files(&root.join(table)) {
            for batch in read_batches(&path)? {
                if is_rejected {
                    s.rejected_rows += batch.num_rows();
                    if let Some(col) = batch
                        .column_by_name("reason")
                        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    {
                        for i in 0..col.len() {
                            *s.reasons.entry(col.value(i).to_string()).or_default() += 1;
                        }
                    }
                } else {
                    s.comment_rows += batch.num_rows();
                    summarize_understanding(&batch, &mut s);
                }
            }
            if is_rejected {
                s.rejected_files += 1;
            } else {
                s.comment_files += 1;
            }
        }
    }
    // Today's labels, as the report and `themes list` show them, over the
    // ones the rows were written with.
    if let Ok(snapshot) = std::fs::read(root.join(crate::themes::store::SNAPSHOT)) {
        let now = crate::themes::store::snapshot_labels(&snapshot);
        let known = crate::themes::store::snapshot_themes(&snapshot);
        for (id, (_, label)) in s.themes.iter_mut() {
            if let Some((_, l)) = now.get(id) {
                label.clone_from(l);
            }
            // Themes per mention: what the theme is about, as the report
            // shows it ("product: app keeps crashing").
            if let Some(target) = known.get(id).and_then(|k| k.target.as_deref()) {
                *label = format!("{target}: {label}");
            }
        }
    }
    Ok(s)
}

fn summarize_understanding(batch: &arrow::record_batch::RecordBatch, s: &mut OutputSummary) {
    use arrow::array::{BooleanArray, Int32Array};
    let text = batch
        .column_by_name("text")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    if let Some(lang) = batch
        .column_by_name("language")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    {
        for i in 0..lang.len() {
            let l = if lang.is_null(i) {
                "unknown"
            } else {
                lang.value(i)
            };
            *s.languages.entry(l.to_string()).or_default() += 1;
        }
    }
    for f in crate::comment::BUILT_IN_FLAGS {
        if let Some(col) = batch
            .column_by_name(f)
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        {
            let n = (0..col.len())
                .filter(|&i| col.is_valid(i) && col.value(i))
                .count();
            *s.flags.entry(f.to_string()).or_default() += n;
            if f == "contact_requested" {
                if let Some(t) = text {
                    for i in (0..col.len()).filter(|&i| col.is_valid(i) && col.value(i)) {
                        if s.follow_up_examples.len() < 3 {
                            s.follow_up_examples.push(t.value(i).to_string());
                        }
                    }
                }
            }
        }
    }
    let strings = |n: &str| {
        batch
            .column_by_name(n)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    };
    let lang = strings("language");
    let lang_of = |i: usize| {
        lang.filter(|c| c.is_valid(i))
            .map_or("unknown", |c| c.value(i))
            .to_string()
    };
    if let Some(col) = strings("sentiment") {
        for i in 0..col.len() {
            let l = if col.is_null(i) {
                "not analysed"
            } else {
                col.value(i)
            };
            *s.sentiment.entry(l.to_string()).or_default() += 1;
            *s.sentiment_by_language
                .entry(lang_of(i))
                .or_default()
                .entry(l.to_string())
                .or_default() += 1;
        }
    }
    if let Some(col) = strings("analysis_skipped") {
        for i in (0..col.len()).filter(|&i| col.is_valid(i)) {
            *s.skipped.entry(col.value(i).to_string()).or_default() += 1;
        }
    }
    for b in ["blames_staff", "blames_product"] {
        if let Some(col) = batch
            .column_by_name(b)
            .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        {
            *s.blames.entry(b.to_string()).or_default() += (0..col.len())
                .filter(|&i| col.is_valid(i) && col.value(i))
                .count();
        }
    }
    if let (Some(t), Some(st), Some(pr)) = (
        text,
        strings("staff_sentiment"),
        strings("product_sentiment"),
    ) {
        for i in 0..t.len() {
            let read = |c: &StringArray| {
                if c.is_valid(i) {
                    c.value(i).to_string()
                } else {
                    "-".to_string()
                }
            };
            if lang_of(i) == "ru"
                && (st.is_valid(i) || pr.is_valid(i))
                && s.russian_examples.len() < 2
            {
                s.russian_examples
                    .push((t.value(i).to_string(), read(st), read(pr)));
            }
            if st.is_valid(i)
                && pr.is_valid(i)
                && st.value(i) == "positive"
                && pr.value(i) == "negative"
                && s.split_examples.len() < 3
            {
                s.split_examples.push((
                    t.value(i).to_string(),
                    st.value(i).to_string(),
                    pr.value(i).to_string(),
                ));
            }
        }
    }
    if let (Some(ids), Some(labels)) = (
        batch
            .column_by_name("theme_id")
            .and_then(|c| c.as_any().downcast_ref::<Int32Array>()),
        strings("theme_label"),
    ) {
        for i in (0..ids.len()).filter(|&i| ids.is_valid(i)) {
            let e = s.themes.entry(ids.value(i)).or_default();
            e.0 += 1;
            if labels.is_valid(i) && !labels.value(i).is_empty() {
                e.1 = labels.value(i).to_string();
            }
        }
    }
    if let Some(col) = batch
        .column_by_name("pii_redacted")
        .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
    {
        s.redacted += (0..col.len())
            .filter(|&i| col.is_valid(i) && col.value(i) > 0)
            .count();
    }
}

/// Every committed `.parquet` file below `dir`, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            // Hidden (`.x`) and underscore (`_staging`) entries are not data.
            if e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Run the whole job on a bundled sample against an in-process mock Kafka
/// cluster, write Parquet under --output-root, and show how to query it.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where to write (cleared first if it holds an earlier demo).
    #[arg(long, default_value = "out/demo", value_parser = crate::config::parse_local_root)]
    pub output_root: PathBuf,
}

/// Runs the demo, writes `theme_daily/` and the report, and prints a summary.
pub async fn execute(args: DemoArgs) -> anyhow::Result<()> {
    let output_root = args.output_root;
    eprintln!("verbatim demo: starting an in-process Kafka mock cluster and producing the bundled sample...");
    let r = run(&output_root).await.context("demo failed")?;
    print_demo(&r);
    let themes = crate::themes::store::ThemeStore::new(crate::sink::store::OutputStore::local(
        &output_root,
    )?);
    let (daily, _) = crate::themes::daily::write_daily(&themes)?;
    println!("\nThemes over time (theme, day, counts, spike flag): {daily}");
    let sla = print_action_status(&output_root)?;
    let page = render_report(
        &crate::report::ReportBuilder::new(&output_root).sla(sla),
        None,
        ReportFormat::Html,
    )?;
    let path = output_root.join("report.html");
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\nReport for product teams (one offline HTML page): {}",
        path.display()
    );
    Ok(())
}

/// Matches the follow-up events to the queue under the demo pipeline's
/// `[actions.sla]`, writes `action_status/` and prints where it stands.
fn print_action_status(root: &Path) -> anyhow::Result<crate::followup::status::Sla> {
    use crate::followup::status::{Sla, Status};
    let cfg = PipelineConfig::from_toml(DEMO_PIPELINE, Path::new("pipelines/demo.toml"))?;
    let sla = Sla(cfg
        .actions
        .sla
        .spans()
        .map_err(|(k, p)| anyhow::anyhow!("actions.sla.{k} {p}"))?);
    let report = crate::followup::table::status_of(root, &sla, chrono::Utc::now())?;
    let store = crate::sink::store::OutputStore::local(root)?;
    let path = root.join(crate::followup::table::write_status(&store, &report)?);
    let n = |s: Status| report.actions.iter().filter(|a| a.status == s).count();
    let late = report
        .actions
        .iter()
        .filter(|a| a.first_response_at.is_some() && a.within_sla == Some(false))
        .count();
    println!(
        "\nDid we answer? {} queued comments: {} resolved and {} answered ({} of them after their SLA), {} overdue with no answer, {} open; {} responses to comments never queued: {}",
        report.actions.len(),
        n(Status::Resolved),
        n(Status::Answered),
        late,
        n(Status::Overdue),
        n(Status::Open),
        report.unmatched,
        path.display()
    );
    Ok(sla)
}

fn print_demo(r: &DemoReport) {
    let o = &r.output;
    let root = r.root.display();
    println!("\nverbatim demo: produced {} messages to topics `{DEMO_TOPIC}` (3 partitions) and `{DEMO_RESPONSES_TOPIC}` on the mock cluster", r.produced);
    println!("wrote {root}/");
    println!(
        "  comments/  {:>5} rows in {} files",
        o.comment_rows, o.comment_files
    );
    println!(
        "  rejected/  {:>5} rows in {} files",
        o.rejected_rows, o.rejected_files
    );
    for (reason, n) in &o.reasons {
        println!("             {n:>5} {reason}");
    }
    println!(
        "  responses/ {:>5} rows (follow-up events from topic `{DEMO_RESPONSES_TOPIC}`)",
        o.response_rows
    );
    println!(
        "  (every message is in exactly one table: {} + {} + {} = {})",
        o.comment_rows,
        o.response_rows,
        o.rejected_rows,
        o.comment_rows + o.response_rows + o.rejected_rows
    );
    if !o.languages.is_empty() {
        let langs: Vec<String> = o
            .languages
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        println!("\nwhat the comments say:");
        println!("  languages: {}", langs.join(", "));
        let flags: Vec<String> = o.flags.iter().map(|(f, n)| format!("{f} {n}")).collect();
        println!("  follow-up flags: {}", flags.join(", "));
        println!("  PII redacted before writing: {} comments", o.redacted);
        for e in &o.follow_up_examples {
            println!("  asks for contact: \"{e}\"");
        }
        let join = |m: &std::collections::BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !o.sentiment.is_empty() {
            println!("  sentiment: {}", join(&o.sentiment));
            for (l, m) in &o.sentiment_by_language {
                println!("    {l}: {}", join(m));
            }
            println!(
                "  not analysed (sentiment and aspects null): {}",
                if o.skipped.is_empty() {
                    "none".to_string()
                } else {
                    join(&o.skipped)
                }
            );
            println!("  complaints aimed at: {}", join(&o.blames));
            println!(
                "  mentions/  {:>5} rows in {} files: {}",
                o.mention_rows,
                o.mention_files,
                join(&o.mentions)
            );
            for (t, st, pr) in &o.split_examples {
                println!("  staff {st}, product {pr}: \"{t}\"");
            }
            for (t, st, pr) in &o.russian_examples {
                println!("  in Russian, staff {st}, product {pr}: \"{t}\"");
            }
        }
        if !o.actions.is_empty() {
            println!(
                "  actions/  {:>5} rows (the follow-up queue, also produced to topic `feedback-actions` for a CRM): {}",
                o.actions.values().sum::<usize>(),
                join(&o.actions)
            );
        }
        if !o.themes.is_empty() {
            let mut top: Vec<(&i32, &(usize, String))> = o.themes.iter().collect();
            top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
            println!("  top themes ({} in all):", o.themes.len());
            for (id, (n, label)) in top.into_iter().take(6) {
                println!("    theme {id:>3} {n:>4} comments  {label}");
            }
        }
    }
    println!("\nquery it with DuckDB (pip install duckdb):");
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT dt, count(*) AS comments, round(avg(score),1) AS avg_score FROM read_parquet('{root}/comments/**/*.parquet', hive_partitioning=true) GROUP BY dt ORDER BY dt\\\"))\""
    );
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT reason, count(*) FROM read_parquet('{root}/rejected/**/*.parquet', hive_partitioning=true) GROUP BY reason\\\"))\""
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_big_varied_and_has_malformed_lines() {
        let msgs = sample_messages();
        assert!(msgs.len() >= 300, "only {} messages", msgs.len());
        let cfg = PipelineConfig::from_toml(DEMO_PIPELINE, Path::new("demo.toml")).unwrap();
        let decoder = crate::decode::Decoder::new(cfg.input);
        let mut reasons = std::collections::BTreeSet::new();
        for (i, (p, k, v)) in msgs.iter().enumerate() {
            let raw = crate::comment::RawMessage {
                coords: crate::comment::SourceCoords {
                    topic: DEMO_TOPIC.into(),
                    partition: *p,
                    offset: i as i64,
                    kafka_timestamp: None,
                },
                key: k.clone(),
                payload: Some(v.clone()),
            };
            if let crate::comment::Decoded::Rejected(r) = decoder.decode(raw, chrono::Utc::now()) {
                reasons.insert(r.reason);
            }
        }
        assert!(
            reasons.len() >= 6,
            "want malformed messages of many kinds, got {reasons:?}"
        );
        let parsed: Vec<serde_json::Value> = msgs
            .iter()
            .filter_map(|(_, _, v)| serde_json::from_slice(v).ok())
            .collect();
        let ru = parsed
            .iter()
            .filter(|v| {
                v["text"]
                    .as_str()
                    .is_some_and(|t| t.chars().any(|c| ('а'..='я').contains(&c)))
            })
            .count();
        assert!(ru >= 30, "want Russian comments, got {ru}");
        let domains: std::collections::BTreeSet<_> = parsed
            .iter()
            .filter_map(|v| v["product"].as_str())
            .collect();
        assert!(domains.len() >= 6, "{domains:?}");
    }

    #[test]
    fn clears_what_an_earlier_demo_wrote() {
        // A second `verbatim demo` used to stop here: the commit protocol's
        // `_commits` and `_staging` were not on the list.
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "_commits/feedback-p0",
            "_staging/feedback-p0",
            "comments",
            "themes",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        prepare_root(dir.path()).unwrap();
        assert!(!dir.path().exists());
    }

    #[test]
    fn refuses_to_clear_foreign_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious.txt"), "x").unwrap();
        assert!(prepare_root(dir.path()).is_err());
        assert!(dir.path().join("precious.txt").exists());
    }
}
