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

/// moto's server behind a WSGI middleware that injects faults, set at run
/// time with `GET /__faults?fail=P&lost=P&delay=P&down=0|1`:
/// - `fail`: share of requests answered 500 InternalError unprocessed;
/// - `lost`: share of conditional PUTs (`If-None-Match`) processed, then
///   answered 500, as when a reply is lost on the way back;
/// - `delay`: share of requests held 1 s first;
/// - `down`: every request answered 503 SlowDown.
const FAULTY: &str = r#"
import random, sys, time
from urllib.parse import parse_qs
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
state = {"fail": 0.0, "lost": 0.0, "delay": 0.0, "down": 0.0}
counts = {"fail": 0, "lost": 0, "delay": 0, "down": 0}
def error(start_response, status, code):
    start_response(status, [("Content-Type", "application/xml")])
    return [f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()]
def faulty(environ, start_response):
    if environ.get("PATH_INFO") == "/__faults":
        for k, v in parse_qs(environ.get("QUERY_STRING", "")).items():
            state[k] = float(v[0])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(counts).encode()]
    if state["down"]:
        counts["down"] += 1
        return error(start_response, "503 Service Unavailable", "SlowDown")
    if random.random() < state["fail"]:
        counts["fail"] += 1
        return error(start_response, "500 Internal Server Error", "InternalError")
    if random.random() < state["delay"]:
        counts["delay"] += 1
        time.sleep(1.0)
    if (environ["REQUEST_METHOD"] == "PUT" and environ.get("HTTP_IF_NONE_MATCH")
            and random.random() < state["lost"]):
        body = b"".join(app(environ, lambda *a, **k: None))
        counts["lost"] += 1
        return error(start_response, "500 Internal Server Error", "InternalError")
    return app(environ, start_response)
run_simple("127.0.0.1", int(sys.argv[1]), faulty, threaded=True)
"#;

impl S3Server {
    /// Starts the server on a free port, logging to `dir/s3.log`; `None`
    /// (the test is skipped) when the test venv is not set up and not required.
    pub fn start(dir: &Path) -> Option<S3Server> {
        Self::start_with(dir, false)
    }

    /// The same server behind a fault injector (see [`S3Server::faults`]).
    pub fn start_faulty(dir: &Path) -> Option<S3Server> {
        Self::start_with(dir, true)
    }

    /// Sets the injected faults (`fail=0.2&down=1`...); returns the counts
    /// of faults injected so far.
    pub fn faults(&self, query: &str) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "GET /__faults?{query} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "setting faults: {reply}");
        // The body (chunked): the counts' dict.
        match (reply.find('{'), reply.rfind('}')) {
            (Some(a), Some(b)) if a < b => reply[a..=b].to_string(),
            _ => String::new(),
        }
    }

    fn start_with(dir: &Path, faulty: bool) -> Option<S3Server> {
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
        let mut cmd = Command::new(py);
        if faulty {
            cmd.args(["-c", FAULTY]);
        } else {
            cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p"]);
        }
        let child = cmd
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

    /// Makes `dest` a copy of every object under `s3://bucket/prefix/` with
    /// boto3, an S3 client independent of verbatim's: new objects are
    /// fetched, ones gone from the bucket removed; objects that vanish while
    /// it runs (staging being published) are skipped. Returns the number of
    /// objects fetched.
    pub fn mirror(&self, bucket: &str, prefix: &str, dest: &Path) -> usize {
        const SCRIPT: &str = r#"
import os, shutil, sys
import boto3, botocore
ep, bucket, prefix, dest = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
os.makedirs(dest, exist_ok=True)
prefix = prefix.strip("/") + "/"
keys = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        keys[os.path.join(dest, o["Key"][len(prefix):])] = (o["Key"], o["Size"])
# Objects are never rewritten in place (unique names, create-if-absent
# markers): fetch the new ones, drop the ones gone from the bucket.
for root, _, files in os.walk(dest):
    for f in files:
        p = os.path.join(root, f)
        if p not in keys:
            os.remove(p)
n = 0
for path, (key, size) in keys.items():
    if os.path.exists(path) and os.path.getsize(path) == size:
        continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        s3.download_file(bucket, key, path + ".part")
        os.replace(path + ".part", path)
        n += 1
    except botocore.exceptions.ClientError:
        pass
print(n)
"#;
        let Some(py) = python() else {
            panic!("VERBATIM_PYTHON cannot import moto.server; run `bash .ci/setup.sh`")
        };
        let out = Command::new(py)
            .args(["-c", SCRIPT, &self.endpoint, bucket, prefix])
            .arg(dest)
            .output()
            .expect("run the boto3 mirror");
        assert!(
            out.status.success(),
            "mirroring s3://{bucket}/{prefix}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// `[output.storage]` lines that point verbatim's store here.
    pub fn storage_toml(&self) -> String {
        format!(
            "[output.storage]\naws_endpoint = \"{}\"\naws_allow_http = \"true\"\naws_region = \"us-east-1\"\naws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n",
            self.endpoint
        )
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
