//! An S3-compatible server for the tests: moto 5.1.18's server (Apache-2.0,
//! from PyPI, pinned by hash in `.ci/requirements-test.txt`), run by the
//! test venv's Python (`VERBATIM_PYTHON`) and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running S3-compatible server; killed on drop.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    addr: std::net::SocketAddr,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("VERBATIM_PYTHON").map(PathBuf::from)?;
    let ok = Command::new(&p)
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(p)
}

impl S3Server {
    /// Starts the server on a free port, logging to `dir/s3.log`; `None`
    /// (the test is skipped) when the test venv is not set up and not required.
    pub fn start(dir: &Path) -> Option<S3Server> {
        let Some(py) = python() else {
            let required = std::env::var("VERBATIM_REQUIRE_SETUP").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "VERBATIM_PYTHON cannot import moto.server; run `bash .ci/setup.sh`"
            );
            eprintln!("skipping: no S3 server (VERBATIM_PYTHON with moto; bash .ci/setup.sh)");
            return None;
        };
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = std::fs::File::create(dir.join("s3.log")).unwrap();
        let child = Command::new(py)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(addr.port().to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the S3 server");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the S3 server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(S3Server {
            child,
            endpoint: format!("http://{addr}"),
            addr,
        })
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "creating bucket {name}: {reply}"
        );
    }

    /// The environment that points an AWS SDK (or `object_store`) client here.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}
