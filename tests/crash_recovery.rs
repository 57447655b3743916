//! The stream job as a child process, crashed at chosen and at random
//! moments, then restarted: the output must equal the input, no loss, no
//! duplicates. The mock cluster lives in this (parent) process; the child
//! connects to it over loopback like any Kafka client.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use verbatim::source::kafka_mock::MockKafka;

const LIMIT: Duration = Duration::from_secs(120);

fn write_pipeline(dir: &Path, bootstrap: &str, group: &str, root: &Path) -> PathBuf {
    write_pipeline_with(dir, bootstrap, group, root, "", 3000)
}

/// The crash-test pipeline with extra `[kafka]` lines and a session timeout.
fn write_pipeline_with(
    dir: &Path,
    bootstrap: &str,
    group: &str,
    root: &Path,
    kafka_extra: &str,
    session_ms: u64,
) -> PathBuf {
    let p = dir.join("pipeline.toml");
    let toml = format!(
        r#"name = "crash-test"
[kafka]
brokers = "{bootstrap}"
topics = ["fb"]
group_id = "{group}"
{kafka_extra}
[kafka.properties]
"session.timeout.ms" = "{session_ms}"
"heartbeat.interval.ms" = "300"
[batch]
max_records = 50
max_wait_ms = 50
[output]
root = "{}"
max_file_bytes = 8192
max_file_age_secs = 1
"#,
        root.display()
    );
    std::fs::write(&p, toml).unwrap();
    p
}

fn spawn_job(pipeline: &Path, failpoint: Option<&str>, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verbatim"));
    cmd.args(["run", "--pipeline"])
        .arg(pipeline)
        .env("VERBATIM_LOG", "warn")
        .env_remove("VERBATIM_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(f) = failpoint {
        cmd.env("VERBATIM_FAILPOINT", f);
    }
    cmd.spawn().expect("spawn verbatim")
}

async fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("child did not exit within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

/// Runs the job until the files cover every produced message of each
/// topic, then stops it with SIGTERM, which must drain and exit 0.
async fn finish(
    pipeline: &Path,
    out: &Out,
    ends: &[(&str, std::collections::BTreeMap<i32, i64>)],
    log: &Path,
) {
    let mut child = spawn_job(pipeline, None, log);
    wait_for(LIMIT, "the restarted job to catch up", || {
        let root = out.view();
        ends.iter().all(|(t, e)| files_reach(&root, t, e))
    })
    .await;
    sigterm(&child);
    let status = wait_exit(&mut child, LIMIT).await;
    assert!(
        status.success(),
        "SIGTERM should drain and exit 0, got {status}; log: {}",
        log.display()
    );
}

/// Where a job under test writes, and how the test reads it back.
enum Out {
    /// A local folder.
    Local(PathBuf),
    /// `s3://verbatim/out` on a loopback S3 server, read back through a
    /// boto3 mirror in a local folder.
    S3 {
        server: Arc<s3::S3Server>,
        prefix: String,
        mirror: PathBuf,
    },
}

impl Out {
    /// On an S3 server started in `dir`, with its bucket; `None` when the
    /// server is not set up (and not required).
    fn s3(dir: &Path) -> Option<Out> {
        let server = s3::S3Server::start(dir)?;
        server.create_bucket("verbatim");
        Some(Out::S3 {
            server: Arc::new(server),
            prefix: "out".into(),
            mirror: dir.join("mirror"),
        })
    }

    /// Another prefix of the same bucket, mirrored to `mirror`.
    fn other_prefix(&self, prefix: &str, mirror: PathBuf) -> Out {
        match self {
            Out::S3 { server, .. } => Out::S3 {
                server: server.clone(),
                prefix: prefix.into(),
                mirror,
            },
            Out::Local(_) => unreachable!("prefixes are for buckets"),
        }
    }

    /// `output.root` as the pipeline names it.
    fn root(&self) -> PathBuf {
        match self {
            Out::Local(p) => p.clone(),
            Out::S3 { prefix, .. } => PathBuf::from(format!("s3://verbatim/{prefix}")),
        }
    }

    /// Lines the pipeline needs after `[output]`.
    fn output_toml(&self, dir: &Path) -> String {
        match self {
            Out::Local(_) => String::new(),
            Out::S3 { server, .. } => format!(
                "spool_dir = \"{}\"\n{}",
                dir.join("spool").display(),
                server.storage_toml()
            ),
        }
    }

    /// A local folder holding the output as it is now (for S3, a fresh
    /// mirror of the bucket made with boto3).
    fn view(&self) -> PathBuf {
        match self {
            Out::Local(p) => p.clone(),
            Out::S3 {
                server,
                prefix,
                mirror,
            } => {
                server.mirror("verbatim", prefix, mirror);
                mirror.clone()
            }
        }
    }
}

/// Crash debris (staged parts not published, partial ranges) of the test
/// topics: comments on `fb` (3 partitions), follow-up events on `fb-resp` (2).
fn debris(root: &Path) -> usize {
    let store = verbatim::sink::store::OutputStore::local(root).unwrap();
    [("fb", 3), ("fb-resp", 2)]
        .into_iter()
        .flat_map(|(t, n)| (0..n).map(move |p| (t, p)))
        .map(|(t, p)| {
            verbatim::sink::files::scan_progress(root, t, p)
                .unwrap()
                .debris
                .len()
                + verbatim::sink::commit::staged(&store, t, p).unwrap()
        })
        .sum()
}

fn dump_log(log: &Path) {
    if let Ok(s) = std::fs::read_to_string(log) {
        eprintln!(
            "--- child log ---\n{}",
            s.chars()
                .rev()
                .take(4000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_each_commit_step_then_restart_is_exact() {
    for point in ["before_marker", "mid_publish", "after_publish"] {
        let mock = MockKafka::start(1).unwrap();
        mock.create_topic("fb", 3).unwrap();
        mock.create_topic("fb-resp", 2).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        let log = dir.path().join("job.log");
        let group = format!("crash-{point}");
        let pipeline = write_pipeline(dir.path(), mock.bootstrap_servers(), &group, &root);
        // Follow-up events on their own topic go through the same commits.
        let toml = std::fs::read_to_string(&pipeline).unwrap();
        std::fs::write(&pipeline, toml + "[responses]\ntopic = \"fb-resp\"\n").unwrap();
        let sent = messages(1500, 3, point);
        let offsets = produce(mock.bootstrap_servers(), "fb", &sent).await;
        let events = response_messages(300, 2, point);
        let ev_offsets = produce(mock.bootstrap_servers(), "fb-resp", &events).await;

        let mut child = spawn_job(&pipeline, Some(point), &log);
        let status = wait_exit(&mut child, LIMIT).await;
        assert!(
            !status.success(),
            "{point}: the failpoint should have aborted the job"
        );

        if point == "after_publish" {
            // The scenario under test: a range is durable in files but its
            // offset never reached Kafka (on whichever topic's range
            // committed first).
            let ahead = [("fb", 3), ("fb-resp", 2)].into_iter().any(|(t, n)| {
                let committed = group_offsets(mock.bootstrap_servers(), &group, t, n);
                (0..n).any(|p| {
                    let files = verbatim::sink::files::scan_progress(&root, t, p)
                        .unwrap()
                        .next_offset;
                    files.is_some_and(|o| o > committed.get(&p).copied().unwrap_or(-1))
                })
            });
            assert!(
                ahead,
                "after_publish: files should be ahead of the group's offsets"
            );
        }
        if point == "mid_publish" {
            let debris: usize = debris(&root);
            assert!(debris > 0, "mid_publish: a partial range should be on disk");
        }

        let all_ends = [
            ("fb", ends(&sent, &offsets)),
            ("fb-resp", ends(&events, &ev_offsets)),
        ];
        finish(&pipeline, &Out::Local(root.clone()), &all_ends, &log).await;
        assert_exact_in(&root, Some("fb"), ("comments", "id"), &sent, &offsets);
        assert_exact_in(
            &root,
            Some("fb-resp"),
            ("responses", "response_id"),
            &events,
            &ev_offsets,
        );
        let debris: usize = debris(&root);
        assert_eq!(debris, 0, "{point}: crash debris left behind");
    }
}

/// A small deterministic generator, so a failing seed can be replayed with
/// `VERBATIM_KILL_SEED`.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = Out::Local(dir.path().join("out"));
    kill_trials(&out, dir.path(), 10, "kill9").await;
}

/// The same on a bucket: every range is committed by a create-if-absent
/// marker on the S3 server and read back with boto3 and DuckDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_on_s3_at_random_moments_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(out) = Out::s3(dir.path()) else {
        return;
    };
    kill_trials(&out, dir.path(), 20, "kill9-s3").await;
    // Nothing is left in staging once the last range from each start is in.
    let view = out.view();
    assert_eq!(
        walk_count(&view.join("_staging")),
        0,
        "staging left in the bucket"
    );
    assert!(view.join("_commits").is_dir(), "markers are in the bucket");
}

/// Files below `dir`.
fn walk_count(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Kills the job with SIGKILL `trials` times at random moments while
/// messages keep arriving, then lets it finish: every message must be in
/// exactly one row.
async fn kill_trials(out: &Out, dir: &Path, trials: usize, group: &str) {
    let seed = std::env::var("VERBATIM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill -9 trials ({group}): VERBATIM_KILL_SEED={seed}");
    let mut rng = Lcg(seed);

    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    mock.create_topic("fb-resp", 2).unwrap();
    let log = dir.join("job.log");
    let pipeline = write_pipeline(dir, mock.bootstrap_servers(), group, &out.root());
    // Follow-up events arrive on their own topic, read by the same job.
    let toml = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        toml + &out.output_toml(dir) + "[responses]\ntopic = \"fb-resp\"\n",
    )
    .unwrap();
    // Messages keep arriving while the job is being killed.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = keep_producing(mock.bootstrap_servers(), &stop, 300, 60, 150);

    let mut advanced = 0;
    let mut last_files = 0usize;
    for t in 0..trials {
        let mut child = spawn_job(&pipeline, None, &log);
        // The killed member keeps its partitions until its 3 s session
        // expires; kill at a random moment after the new member could own them.
        let delay = Duration::from_millis(3000 + rng.next() % 3500);
        tokio::time::sleep(delay).await;
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let files = verbatim::cli::demo::parquet_files(&out.view()).len();
        eprintln!("trial {t}: killed after {delay:?}; {files} committed files");
        if files > last_files {
            advanced += 1;
        }
        last_files = files;
    }
    stop.store(true, Ordering::SeqCst);
    let (sent, offsets, resp, resp_offsets) = producer.await.unwrap();
    assert!(
        advanced >= 3,
        "only {advanced} of {trials} trials got as far as committing files"
    );
    let all_ends = [
        ("fb", ends(&sent, &offsets)),
        ("fb-resp", ends(&resp, &resp_offsets)),
    ];
    finish(&pipeline, out, &all_ends, &log).await;
    let root = out.view();
    let result = std::panic::catch_unwind(|| {
        assert_exact_in(&root, Some("fb"), ("comments", "id"), &sent, &offsets);
        assert_exact_in(
            &root,
            Some("fb-resp"),
            ("responses", "response_id"),
            &resp,
            &resp_offsets,
        );
    });
    if result.is_err() {
        dump_log(&log);
        panic!("output differs from input after kill -9 trials (seed {seed})");
    }
}

/// Status code of GET `path` on `addr` (None: nothing listening).
fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path).map(|r| r.0)
}

/// Kills a member with SIGKILL and restarts it at once; returns how long the
/// new process took to be ready again (assigned its partitions).
/// Runs on its own tansu broker; `None` when tansu is not set up.
async fn kill_and_time_rejoin(instance_id: Option<&str>, session_ms: u64) -> Option<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let broker = tansu::Tansu::start(dir.path())?;
    broker.create_topic("fb", 3).await;
    let bootstrap = broker.bootstrap.as_str();
    let group = "g-restart";
    let root = dir.path().join("out");
    let log = dir.path().join("job.log");
    let first = messages(300, 3, "s1");
    let mut offsets = produce(bootstrap, "fb", &first).await;
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let pipeline_at = |addr: std::net::SocketAddr| {
        let extra = instance_id.map_or(String::new(), |id| format!("instance_id = \"{id}\""));
        let p = write_pipeline_with(dir.path(), bootstrap, group, &root, &extra, session_ms);
        let mut t = std::fs::read_to_string(&p).unwrap();
        t.push_str(&format!("[metrics]\nlisten = \"{addr}\"\n"));
        std::fs::write(&p, t).unwrap();
        p
    };
    let ready = |addr: std::net::SocketAddr, log: PathBuf| async move {
        let t0 = Instant::now();
        while http_status(addr, "/readyz") != Some(200) {
            if t0.elapsed() > LIMIT {
                dump_log(&log);
                panic!("the member never became ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let a = free();
    let mut child = spawn_job(&pipeline_at(a), None, &log);
    ready(a, log.clone()).await;
    wait_for(LIMIT, "the first messages to be durable", || {
        debris(&root) == 0 && root.join("comments").is_dir()
    })
    .await;
    child.kill().unwrap(); // SIGKILL: no leave-group, no commit
    let _ = wait_exit(&mut child, LIMIT).await;
    let b = free();
    let started = Instant::now();
    let mut child = spawn_job(&pipeline_at(b), None, &log);
    ready(b, log.clone()).await;
    let rejoin = started.elapsed();
    let second = messages(300, 3, "s2");
    offsets.extend(produce(bootstrap, "fb", &second).await);
    let all: Vec<_> = first.into_iter().chain(second).collect();
    let ends = ends(&all, &offsets);
    wait_for(LIMIT, "the restarted member to catch up", || {
        files_reach(&root, "fb", &ends)
    })
    .await;
    sigterm(&child);
    assert!(wait_exit(&mut child, LIMIT).await.success());
    assert_exact(&root, &all, &offsets);
    Some(rejoin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_killed_and_restarted_rejoins_without_waiting_for_its_session() {
    // librdkafka's mock cluster does not implement static membership for
    // classic groups; tansu, a real broker process, does.
    // A long session: a member that waited for its old session would take
    // over 30 s (dynamic membership took 18.0 s with a 10 s session here,
    // closing note of issue 16).
    let session = Duration::from_secs(30);
    let Some(fixed) = kill_and_time_rejoin(Some("member-a"), session.as_millis() as u64).await
    else {
        return;
    };
    eprintln!(
        "rejoin after kill -9 with kafka.instance_id and session.timeout.ms = {}: {:.1} s",
        session.as_millis(),
        fixed.as_secs_f64()
    );
    // The protocol property, not a speed: the static member does not wait
    // for its old session to expire.
    assert!(
        fixed < session,
        "static rejoin took {fixed:?}, session {session:?}"
    );
}

/// Produces `comments` messages to `fb` (3 partitions) and `events`
/// follow-up events to `fb-resp` (2) every `pause_ms` until `stop` (or
/// 30,000 comments); returns what was sent with its offsets.
#[allow(clippy::type_complexity)]
fn keep_producing(
    bootstrap: &str,
    stop: &Arc<AtomicBool>,
    comments: usize,
    events: usize,
    pause_ms: u64,
) -> tokio::task::JoinHandle<(Vec<Sent>, Vec<i64>, Vec<Sent>, Vec<i64>)> {
    let bootstrap = bootstrap.to_string();
    let stop = stop.clone();
    tokio::spawn(async move {
        let (mut sent, mut offsets) = (Vec::new(), Vec::new());
        let (mut resp, mut resp_offsets) = (Vec::new(), Vec::new());
        let mut round = 0;
        while !stop.load(Ordering::SeqCst) && sent.len() < 30_000 {
            let batch = messages(comments, 3, &format!("k{round}"));
            offsets.extend(produce(&bootstrap, "fb", &batch).await);
            sent.extend(batch);
            if events > 0 {
                let ev = response_messages(events, 2, &format!("k{round}"));
                resp_offsets.extend(produce(&bootstrap, "fb-resp", &ev).await);
                resp.extend(ev);
            }
            round += 1;
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        (sent, offsets, resp, resp_offsets)
    })
}

/// Sends `sig` (STOP, CONT) to a child.
fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// A "zombie": one of two members is frozen (SIGSTOP) until the group gives
/// its partitions to the other, which writes on; then it is thawed
/// (SIGCONT) holding its stale batch. Its commit loses to the new owner's
/// marker (it stops with the error), or it meets the revocation first and
/// drops the batch; either way no row is lost or written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_member_thawed_with_a_stale_batch_writes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let Some(out) = Out::s3(dir.path()) else {
        return;
    };
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    let pipeline = write_pipeline(dir.path(), mock.bootstrap_servers(), "zombie", &out.root());
    let toml = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, toml + &out.output_toml(dir.path())).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let producer = keep_producing(mock.bootstrap_servers(), &stop, 150, 0, 100);
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let mut a = spawn_job(&pipeline, None, &log_a);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut b = spawn_job(&pipeline, None, &log_b);
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal(&a, "STOP");
    // Past A's 3 s session: B owns every partition and commits on.
    tokio::time::sleep(Duration::from_secs(9)).await;
    signal(&a, "CONT");
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::SeqCst);
    let (sent, offsets, _, _) = producer.await.unwrap();

    let a_log = std::fs::read_to_string(&log_a).unwrap_or_default();
    let fenced = a_log.contains("was already committed by writer");
    let dropped = a_log.contains("assignment lost");
    eprintln!("zombie: fenced by a marker: {fenced}; dropped its batch on revocation: {dropped}");
    assert!(
        fenced || dropped,
        "the thawed member neither lost a marker race nor saw its assignment lost; log: {a_log}"
    );
    if fenced {
        let status = wait_exit(&mut a, LIMIT).await;
        assert!(!status.success(), "a fenced member stops with an error");
    }
    for c in [&mut a, &mut b] {
        if c.try_wait().unwrap().is_none() {
            sigterm(c);
            let _ = wait_exit(c, LIMIT).await;
        }
    }
    finish(&pipeline, &out, &[("fb", ends(&sent, &offsets))], &log_b).await;
    assert_exact_in(&out.view(), Some("fb"), ("comments", "id"), &sent, &offsets);
}

/// Two instances of one group on two prefixes of one bucket, against one
/// prefix. A writes, then B, then A again: with one prefix each message is
/// in exactly one row; with two, A resumes from its own markers and writes
/// what B wrote in between again (README: one prefix per group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prefixes_of_one_bucket_write_a_returning_partition_twice_one_prefix_never() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bucket) = Out::s3(dir.path()) else {
        return;
    };
    for shared in [true, false] {
        let case = if shared { "one" } else { "two" };
        let mock = MockKafka::start(1).unwrap();
        mock.create_topic("fb", 3).unwrap();
        let (pa, pb) = if shared {
            (format!("{case}-shared"), format!("{case}-shared"))
        } else {
            (format!("{case}-a"), format!("{case}-b"))
        };
        let a = bucket.other_prefix(&pa, dir.path().join(format!("mirror-{case}-a")));
        let b = bucket.other_prefix(&pb, dir.path().join(format!("mirror-{case}-b")));
        let pipeline = |out: &Out, name: &str| {
            let d = dir.path().join(format!("{case}-{name}"));
            std::fs::create_dir_all(&d).unwrap();
            let p = write_pipeline(&d, mock.bootstrap_servers(), case, &out.root());
            let toml = std::fs::read_to_string(&p).unwrap();
            std::fs::write(&p, toml + &out.output_toml(&d)).unwrap();
            p
        };
        let (pipe_a, pipe_b) = (pipeline(&a, "a"), pipeline(&b, "b"));
        let log = dir.path().join(format!("{case}.log"));
        let (mut sent, mut offsets) = (Vec::new(), Vec::new());
        // Wave 1 by A, wave 2 by B, wave 3 by A again.
        let mut wave2 = (Vec::new(), Vec::new());
        for (i, (who, p)) in [(&a, &pipe_a), (&b, &pipe_b), (&a, &pipe_a)]
            .into_iter()
            .enumerate()
        {
            let m = messages(300, 3, &format!("{case}{i}"));
            let o = produce(mock.bootstrap_servers(), "fb", &m).await;
            if i == 1 {
                wave2 = (m.clone(), o.clone());
            }
            sent.extend(m);
            offsets.extend(o);
            finish(p, who, &[("fb", ends(&sent, &offsets))], &log).await;
        }
        assert_exact_in(&a.view(), Some("fb"), ("comments", "id"), &sent, &offsets);
        if shared {
            // `report` reads the bucket as it reads a folder: the same
            // report as over the boto3 copy.
            let report = |root: &Path, extra: &[&std::ffi::OsStr]| -> serde_json::Value {
                let out = Command::new(env!("CARGO_BIN_EXE_verbatim"))
                    .args(["report", "--format", "json", "--output-root"])
                    .arg(root)
                    .args(extra)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                // The clock's reading, not the data's.
                v["generated_at"] = serde_json::Value::Null;
                v["answered"]["as_of"] = serde_json::Value::Null;
                v
            };
            let cache = dir.path().join("cache");
            let mut from_bucket = report(
                &a.root(),
                &[
                    "--pipeline".as_ref(),
                    pipe_a.as_os_str(),
                    "--cache-dir".as_ref(),
                    cache.as_os_str(),
                ],
            );
            let mut from_copy = report(&a.view(), &[]);
            assert_eq!(from_bucket["output_root"], a.root().display().to_string());
            assert_eq!(
                from_bucket["overview"]["comments"].as_u64(),
                Some(sent.iter().filter(|m| m.reject.is_none()).count() as u64),
                "{from_bucket}"
            );
            from_bucket["output_root"] = serde_json::Value::Null;
            from_copy["output_root"] = serde_json::Value::Null;
            assert_eq!(from_bucket, from_copy);
        }
        if !shared {
            // B's prefix holds wave 2, which A's prefix holds as well.
            assert_exact_in(
                &b.view(),
                Some("fb"),
                ("comments", "id"),
                &wave2.0,
                &wave2.1,
            );
        }
    }
}

/// The S3 server fails a fifth of requests with 500s, delays a tenth by a
/// second, processes every marker create then "loses its reply" (a 500, so
/// the create is retried and finds the marker made), and answers 503 to
/// everything for 8 s, all while messages keep arriving:
/// the job retries through it without stopping, and nothing is lost or
/// written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_are_retried_and_lose_or_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = s3::S3Server::start_faulty(dir.path()) else {
        return;
    };
    server.create_bucket("verbatim");
    let out = Out::S3 {
        server: Arc::new(server),
        prefix: "out".into(),
        mirror: dir.path().join("mirror"),
    };
    let Out::S3 { server, .. } = &out else {
        unreachable!()
    };
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    let pipeline = write_pipeline(dir.path(), mock.bootstrap_servers(), "faults", &out.root());
    let toml = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, toml + &out.output_toml(dir.path())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = keep_producing(mock.bootstrap_servers(), &stop, 150, 0, 150);
    let log = dir.path().join("job.log");
    let mut child = spawn_job(&pipeline, None, &log);
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.faults("fail=0.2&delay=0.1&lost=1");
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.faults("down=1");
    tokio::time::sleep(Duration::from_secs(8)).await;
    server.faults("down=0");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let counts = server.faults("fail=0&delay=0&lost=0");
    eprintln!("faults injected: {counts}");
    stop.store(true, Ordering::SeqCst);
    let (sent, offsets, _, _) = producer.await.unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job stopped on errors it should have retried; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    sigterm(&child);
    let status = wait_exit(&mut child, LIMIT).await;
    assert!(status.success(), "SIGTERM after the faults: {status}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("found already made by this writer"),
        "no marker create was retried after a lost reply ({counts}); log: {text}"
    );
    finish(&pipeline, &out, &[("fb", ends(&sent, &offsets))], &log).await;
    assert_exact_in(&out.view(), Some("fb"), ("comments", "id"), &sent, &offsets);
}

/// A bucket that does not exist stops the job at start, with the bucket
/// named and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_stops_the_job_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let Some(out) = Out::s3(dir.path()) else {
        return;
    };
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 1).unwrap();
    let root = PathBuf::from("s3://no-such-bucket/out");
    let pipeline = write_pipeline(dir.path(), mock.bootstrap_servers(), "missing", &root);
    let toml = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, toml + &out.output_toml(dir.path())).unwrap();
    let log = dir.path().join("job.log");
    let mut child = spawn_job(&pipeline, None, &log);
    let status = wait_exit(&mut child, LIMIT).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{text}");
    assert!(text.contains("s3://no-such-bucket"), "{text}");
    assert!(
        text.contains("Fix: create the bucket s3://no-such-bucket"),
        "{text}"
    );
    // `check --connect` finds it before a start.
    let out = Command::new(env!("CARGO_BIN_EXE_verbatim"))
        .args(["check", "--connect"])
        .arg(&pipeline)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("`output.root`") && err.contains("Fix: create the bucket s3://no-such-bucket"),
        "{err}"
    );
}
