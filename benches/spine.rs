//! Spine throughput, no models: messages/s from the mock cluster to durable
//! Parquet, and the job's peak RSS, writing to a local folder and to an S3
//! server on loopback (moto, when the test venv has it) in the same run.
//!
//! The mock cluster runs in this process; `verbatim run` (release build) runs
//! as a child, so its RSS is the job's alone. The clock starts when the child
//! is spawned. Once its `/metrics` endpoint shows every message written, the
//! child gets SIGTERM, which drains and commits (fsync + rename + offset
//! commit); the clock stops when it has exited 0 and the committed files
//! cover every produced offset: durable throughput, startup and group join
//! included. `cargo bench --bench spine [-- N]` (N messages, default 90000).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
#[allow(dead_code)]
#[path = "../tests/common/s3.rs"]
mod s3;
use common::written;
use verbatim::sink::store::OutputStore;
use verbatim::source::kafka_mock::{produce_all, MockKafka};

const PARTITIONS: i32 = 6;

fn payload(i: usize) -> Vec<u8> {
    const T: [&str; 4] = [
        "The engineer was lovely but the app keeps crashing every evening",
        "Third time I have called about my bill, please call me back today",
        "Delivery was fast and the driver was polite, packaging could be better",
        "Связь пропадает каждый вечер, перезвоните мне пожалуйста",
    ];
    serde_json::json!({
        "id": format!("b-{i}"),
        "text": T[i % T.len()],
        "created_at": format!("2026-11-{:02}T10:00:00Z", 1 + i % 20),
        "score": (i % 11),
        "staff_id": format!("S{}", i % 50),
        "location": "Leeds",
        "product": "broadband",
    })
    .to_string()
    .into_bytes()
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    common::vm_kib(pid, "VmHWM")
}

fn main() {
    // As the `verbatim` binary does, before any thread starts.
    verbatim::metrics::memory::limit_heap_arenas();
    // `cargo bench` passes --bench; `cargo test --benches` does not, and then
    // this runs once as a quick smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 90_000 } else { 3_000 });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mock = MockKafka::start(1).expect("mock cluster");
    mock.create_topic("fb", PARTITIONS).expect("topic");
    let msgs: Vec<_> = (0..n)
        .map(|i| ((i % PARTITIONS as usize) as i32, None, payload(i)))
        .collect();
    let bytes: usize = msgs.iter().map(|m| m.2.len()).sum();
    // The mock keeps about 5 MiB per partition; stay under it.
    assert!(
        bytes / (PARTITIONS as usize) < 5 * 1024 * 1024,
        "too many messages for the mock cluster"
    );
    let delivered = rt
        .block_on(produce_all(mock.bootstrap_servers(), "fb", msgs))
        .expect("produce");
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in delivered {
        let e = ends.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }

    println!(
        "spine bench: {n} messages ({:.1} MiB of JSON) over {PARTITIONS} partitions",
        bytes as f64 / 1048576.0
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("out");
    run_job(
        "local folder",
        &mock,
        &dir.path().join("local"),
        format!("root = \"{}\"\n", local.display()),
        OutputStore::local(&local).expect("local store"),
        n,
        &ends,
    );
    match s3::S3Server::start(dir.path()) {
        Some(server) => {
            server.create_bucket("bench");
            let storage = server.storage_toml();
            let mut opts = std::collections::BTreeMap::new();
            for line in storage.lines().skip(1) {
                if let Some((k, v)) = line.split_once(" = ") {
                    opts.insert(k.to_string(), v.trim_matches('"').to_string());
                }
            }
            let spool = dir.path().join("spool");
            let store = OutputStore::remote("s3://bench/out", &opts, &spool).expect("s3 store");
            run_job(
                "S3 on loopback (moto)",
                &mock,
                &dir.path().join("s3"),
                format!(
                    "root = \"s3://bench/out\"\nspool_dir = \"{}\"\n{storage}",
                    spool.display()
                ),
                store,
                n,
                &ends,
            );
        }
        None => println!("  (no S3 server: VERBATIM_PYTHON with moto; bash .ci/setup.sh)"),
    }
}

/// Runs `verbatim run` over the produced messages with `[output]` lines
/// `output`, in its own consumer group, until every offset is durable in
/// `store`; prints the figures.
fn run_job(
    label: &str,
    mock: &MockKafka,
    dir: &std::path::Path,
    output: String,
    store: OutputStore,
    n: usize,
    ends: &BTreeMap<i32, i64>,
) {
    std::fs::create_dir_all(dir).expect("dir");
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr")
    };
    let pipeline = dir.join("bench.toml");
    let group = label.replace(' ', "-");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"bench\"\n[kafka]\nbrokers = \"{}\"\ntopics = [\"fb\"]\ngroup_id = \"{group}\"\n\
             [batch]\nmax_records = 1024\nmax_wait_ms = 200\n[metrics]\nlisten = \"{metrics_addr}\"\n\
             [output]\nmax_file_age_secs = 30\n{output}",
            mock.bootstrap_servers(),
        ),
    )
    .expect("pipeline file");

    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_verbatim"))
        .args(["run", "--pipeline"])
        .arg(&pipeline)
        .env("VERBATIM_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn verbatim");
    let mut hwm = 0;
    while written(metrics_addr) < n as u64 {
        hwm = hwm.max(vm_hwm_kib(child.id()).unwrap_or(0));
        if start.elapsed() > Duration::from_secs(600) {
            let _ = child.kill();
            panic!("the job did not finish within 600 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    hwm = hwm.max(vm_hwm_kib(child.id()).unwrap_or(0));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    let elapsed = start.elapsed();
    assert!(status.success(), "job exited with {status}");
    for (&p, &end) in ends {
        let next = verbatim::sink::recover_partition(&store, "fb", p)
            .ok()
            .and_then(|x| x.next);
        assert_eq!(next, Some(end), "partition {p} not fully committed");
    }
    let listed = store.list("comments").expect("list comments/");
    let files = listed.len();
    let stored: u64 = ["comments", "rejected", "mentions", "actions"]
        .iter()
        .flat_map(|t| store.list(t).unwrap_or_default())
        .map(|l| l.size)
        .sum();
    println!("  {label}:");
    println!(
        "    wall (spawn -> every offset durable in Parquet, job exited): {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "    throughput: {:.0} messages/s",
        n as f64 / elapsed.as_secs_f64()
    );
    println!("    peak RSS of the job: {:.1} MiB", hwm as f64 / 1024.0);
    println!(
        "    output: {files} comment files, {:.1} MiB stored (zstd)",
        stored as f64 / 1048576.0
    );
}
