//! `[output]` and `[rejected]`: the Parquet tables and the dead-letter topic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// `[output]`: the Parquet tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Where the tables live: a folder (or `file:///path`), or a bucket:
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
    /// (also `abfs://`). `comments/`, `rejected/`... live under it.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// A partition's open files are committed once they hold this many bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// ...or once they have been open this long (seconds).
    #[serde(default = "default_max_file_age_secs")]
    pub max_file_age_secs: u64,
    /// Rows the sink may hold in memory, in bytes, over all open files;
    /// past it the biggest files' rows are written out early (smaller row
    /// groups, nothing committed).
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: u64,
    /// Rows per Parquet row group (at most).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// zstd level (1–22).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// `[output.storage]`: options of a bucket root, with object_store's own
    /// key names (`aws_region`, `aws_endpoint`, `aws_allow_http`,
    /// `aws_virtual_hosted_style_request`, `google_service_account`,
    /// `azure_storage_account_name`, ...). They are applied over the
    /// standard environment (AWS_*, GOOGLE_*, AZURE_*); secrets are masked by
    /// `verbatim check`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<String, String>,
    /// Local folder where a bucket root's parts are written before upload
    /// (default: the system's temporary folder). Unused for a local root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
}

fn default_root() -> PathBuf {
    PathBuf::from("out/verbatim")
}
fn default_max_file_bytes() -> u64 {
    128 * 1024 * 1024
}
fn default_max_file_age_secs() -> u64 {
    300
}
fn default_max_buffered_bytes() -> u64 {
    128 * 1024 * 1024
}
fn default_row_group_rows() -> usize {
    65_536
}
fn default_zstd_level() -> i32 {
    3
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            root: default_root(),
            max_file_bytes: default_max_file_bytes(),
            max_file_age_secs: default_max_file_age_secs(),
            max_buffered_bytes: default_max_buffered_bytes(),
            row_group_rows: default_row_group_rows(),
            zstd_level: default_zstd_level(),
            storage: BTreeMap::new(),
            spool_dir: None,
        }
    }
}

/// `[rejected]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RejectedConfig {
    /// Also send each rejected message to this Kafka topic (raw value, reason
    /// in headers). Delivery is confirmed before the input offset is committed.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
}

/// Keys of `[output.storage]` whose values are secrets (masked by
/// `verbatim check`).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "access_key",
        "account_key",
        "sas",
        "credential",
        "service_account_key",
    ]
    .iter()
    .any(|s| k.contains(s))
        && !k.ends_with("_id")
        && !k.contains("path")
        && !k.contains("file")
}

/// Why an output root cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RootError {
    /// A URL scheme no store serves (`http://`, `ftp://`...).
    #[error(
        "`{scheme}://` is not a store verbatim can write. Fix: use a folder, \
         file:///absolute/path, s3://bucket/prefix, gs://bucket/prefix, \
         az://container/prefix or abfs://container@account.dfs.core.windows.net/prefix"
    )]
    Unsupported {
        /// The URL's scheme.
        scheme: String,
    },
    /// A bucket URL given to the demo, which writes a local folder.
    #[error(
        "`{scheme}://` is object storage, and the demo writes a local folder \
         (the stream job, `ingest`, `report`, `themes` and `actions` take \
         buckets). Fix: give the demo a folder, e.g. --output-root out/demo"
    )]
    LocalOnly {
        /// The URL's scheme.
        scheme: String,
    },
    /// A `file://` URL naming another host.
    #[error(
        "`file://{host}/…` names another host. Fix: use file:///absolute/path or a plain path"
    )]
    FileHost {
        /// The host the URL names.
        host: String,
    },
}

/// URL schemes of the buckets `output.root` can name.
pub const BUCKET_SCHEMES: [&str; 6] = ["s3", "s3a", "gs", "az", "abfs", "abfss"];

/// Reads an output root (`output.root`, `ingest --output-root`): a plain
/// path, a `file:///absolute/path` URL (which becomes that path), or a
/// bucket URL (kept as written; see [`OutputConfig::bucket_url`]). Any
/// other URL is refused: before this check `s3://bucket/out` quietly became
/// a local folder named `s3:`.
pub fn parse_output_root(s: &str) -> Result<PathBuf, RootError> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok(PathBuf::from(s));
    };
    let is_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !is_scheme {
        return Ok(PathBuf::from(s));
    }
    let lower = scheme.to_ascii_lowercase();
    if BUCKET_SCHEMES.contains(&lower.as_str()) {
        return Ok(PathBuf::from(format!("{lower}://{rest}")));
    }
    if lower != "file" {
        return Err(RootError::Unsupported { scheme: lower });
    }
    match rest.split_once('/') {
        Some(("" | "localhost", path)) => Ok(PathBuf::from(format!("/{path}"))),
        Some((host, _)) => Err(RootError::FileHost { host: host.into() }),
        None if rest.is_empty() || rest == "localhost" => Ok(PathBuf::from("/")),
        None => Err(RootError::FileHost { host: rest.into() }),
    }
}

/// Reads the `--output-root` of the demo, which writes a local folder:
/// like [`parse_output_root`], but a bucket URL is refused with the fix.
pub fn parse_local_root(s: &str) -> Result<PathBuf, RootError> {
    let p = parse_output_root(s)?;
    match bucket_scheme(&p) {
        Some(scheme) => Err(RootError::LocalOnly { scheme }),
        None => Ok(p),
    }
}

/// The bucket scheme of a root read by [`parse_output_root`], if it is one.
fn bucket_scheme(root: &std::path::Path) -> Option<String> {
    let (scheme, _) = root.to_str()?.split_once("://")?;
    BUCKET_SCHEMES.contains(&scheme).then(|| scheme.to_string())
}

impl OutputConfig {
    /// Reads a `file://` root as its path (see [`parse_output_root`]); other
    /// roots are left for [`OutputConfig::validate`] to check.
    pub(crate) fn normalize(&mut self) {
        if let Some(p) = self.root.to_str().and_then(|s| parse_output_root(s).ok()) {
            self.root = p;
        }
    }

    /// The root as a bucket URL (`s3://bucket/prefix`...), or `None` for a
    /// local folder.
    pub fn bucket_url(&self) -> Option<&str> {
        bucket_scheme(&self.root).and_then(|_| self.root.to_str())
    }

    /// Checks every `[output]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        if let Some(Err(e)) = self.root.to_str().map(parse_output_root) {
            let (problem, fix) = e.to_string().split_once(" Fix: ").map_or_else(
                || (e.to_string(), String::new()),
                |(p, f)| (p.trim_end_matches('.').to_string(), f.to_string()),
            );
            return Err(bad.err(
                "output.root",
                format!("is {:?}: {problem}", self.root.display().to_string()),
                &fix,
            ));
        }
        if self.root.as_os_str().is_empty() {
            return Err(bad.err(
                "output.root",
                "is empty".into(),
                "set a folder, e.g. root = \"out/feedback\"",
            ));
        }
        if let Some(url) = self.bucket_url() {
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            if rest.split('/').next().unwrap_or("").is_empty() {
                return Err(bad.err(
                    "output.root",
                    format!("is {url:?}, which names no bucket"),
                    "write it as s3://bucket/prefix",
                ));
            }
        } else if !self.storage.is_empty() {
            return Err(bad.err(
                "output.storage",
                "is set, but output.root is a local folder".into(),
                "remove [output.storage], or set output.root to a bucket URL (s3://bucket/prefix)",
            ));
        }
        if self.max_file_bytes < 1024 {
            return Err(bad.err(
                "output.max_file_bytes",
                format!("is {}", self.max_file_bytes),
                "use at least 1024 bytes; 134217728 (128 MiB) suits most query engines",
            ));
        }
        if self.max_file_age_secs == 0 {
            return Err(bad.err(
                "output.max_file_age_secs",
                "is 0".into(),
                "use a positive number of seconds, e.g. 300",
            ));
        }
        if self.max_buffered_bytes < 1024 * 1024 {
            return Err(bad.err(
                "output.max_buffered_bytes",
                format!("is {}", self.max_buffered_bytes),
                "use at least 1048576 (1 MiB); the default 134217728 (128 MiB) keeps row groups large",
            ));
        }
        if self.row_group_rows == 0 {
            return Err(bad.err(
                "output.row_group_rows",
                "is 0".into(),
                "use a positive row count, e.g. 65536",
            ));
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err(bad.err(
                "output.zstd_level",
                format!("is {}", self.zstd_level),
                "use a zstd level from 1 to 22, e.g. 3",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        for k in [
            "aws_secret_access_key",
            "aws_session_token",
            "azure_storage_account_key",
            "google_service_account_key",
            "azure_storage_sas_key",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "aws_access_key_id",
            "aws_region",
            "aws_endpoint",
            "google_service_account_path",
            "aws_allow_http",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
