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
