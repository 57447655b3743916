//! Where the output tables live: a local folder or a bucket (S3 and
//! S3-compatible stores, Google Cloud Storage, Azure Blob), behind Apache
//! Arrow's `object_store` crate, so one commit protocol ([`super::commit`])
//! serves both.
//!
//! The sink is synchronous code on blocking threads; [`OutputStore`] runs
//! each store call on a small runtime of its own and waits for it, so it can
//! be called from any thread (the consumer's rebalance callback included).
//!
//! - A local root is a `LocalFileSystem` rooted at the folder, with fsync on:
//!   parts are written in place under `_staging/` and "uploading" them is an
//!   fsync.
//! - A bucket root writes parts to a local spool folder first and uploads
//!   each at commit with a multipart upload read from the file in chunks, so
//!   memory stays flat whatever the file's size.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

/// Chunk size of multipart uploads (S3's minimum part is 5 MiB).
const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;
/// Chunks of one upload in flight at once.
const UPLOAD_CONCURRENCY: usize = 2;

/// Errors from the output store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A store request failed (after the store's own retries with backoff).
    #[error("{op} {url}: {source}{}", fix_for_store(source, url))]
    Store {
        /// What was being done.
        op: &'static str,
        /// The object, as a URL.
        url: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A local file (the spool, or a part being uploaded) could not be read.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output root could not be opened as a store.
    #[error("output.root {url:?}: {message}. Fix: {fix}")]
    Open {
        /// The root.
        url: String,
        /// What went wrong.
        message: String,
        /// What to do.
        fix: String,
    },
}

impl StoreError {
    /// Whether the error says the object is absent.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            StoreError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        ) || matches!(self, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The fix for a store error a user can act on ("" when there is none).
fn fix_for_store(e: &object_store::Error, url: &str) -> String {
    let bucket = bucket_of(url);
    if is_bucket_missing(e) {
        return format!(". Fix: create the bucket {bucket}, or correct output.root");
    }
    match e {
        object_store::Error::PermissionDenied { .. } => format!(
            ". Fix: give the job's credentials write access to {bucket} (s3:PutObject, s3:GetObject, s3:DeleteObject, s3:ListBucket)"
        ),
        object_store::Error::Unauthenticated { .. } => format!(
            ". Fix: the store refused the credentials for {bucket}; set them in [output.storage] or the standard environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCOUNT_KEY)"
        ),
        object_store::Error::NotImplemented { .. } => ". Fix: this store does not offer create-if-absent writes, which fence stale writers; for S3-compatible stores set [output.storage] aws_conditional_put = \"etag\" on a store that honours If-None-Match".into(),
        object_store::Error::Generic { source, .. } => {
            let s = source.to_string();
            if s.contains("Connection refused") || s.contains("error sending request") || s.contains("dns error") {
                format!(". Fix: the store for {bucket} could not be reached; check [output.storage] endpoint and the network; uncommitted rows are read again from Kafka on restart, nothing is lost or written twice")
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

/// Whether the store said the bucket itself does not exist.
fn is_bucket_missing(e: &object_store::Error) -> bool {
    let s = format!("{e:?}");
    s.contains("NoSuchBucket")
        || s.contains("ContainerNotFound")
        || s.contains("bucket does not exist")
}

/// `s3://bucket` from `s3://bucket/prefix/obj`.
fn bucket_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
        }
        None => url.to_string(),
    }
}

/// A local file as [`Listed`].
fn local_listed(path: String, m: &std::fs::Metadata) -> Listed {
    Listed {
        path,
        modified: m
            .modified()
            .map_or_else(|_| chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, Into::into),
        size: m.len(),
        e_tag: None,
    }
}

/// The files under `root/rel`, recursively, sorted, as [`OutputStore::list`]
/// gives them (object_store's `LocalFileSystem` lists the same files, but
/// on the runtime's blocking threads). Files being written (`.tmp`, and
/// `LocalFileSystem`'s `#` staging names) are left out.
fn list_local(root: &Path, rel: &str) -> Result<Vec<Listed>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![rel.trim_matches('/').to_string()];
    while let Some(dir) = stack.pop() {
        let path = root.join(&dir);
        let rd = match std::fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StoreError::Io {
                    op: "listing",
                    path,
                    source,
                })
            }
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let child = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(child),
                Ok(m) if m.is_file() && !name.contains('#') && !name.ends_with(".tmp") => {
                    out.push(local_listed(child, &m));
                }
                _ => {}
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// An object in the store, as listed.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its path relative to the root.
    pub path: String,
    /// When it was last written.
    pub modified: chrono::DateTime<chrono::Utc>,
    /// Its size in bytes.
    pub size: u64,
    /// The store's entity tag, when it gives one (changes with the content).
    pub e_tag: Option<String>,
}

/// The output root as a store: every read and write of the committed
/// tables goes through it.
#[derive(Clone)]
pub struct OutputStore {
    inner: Arc<dyn ObjectStore>,
    /// Prefix of the root inside the store (empty for a local root).
    prefix: ObjPath,
    /// The folder, when the root is local.
    local: Option<PathBuf>,
    /// Where parts are written before upload (a bucket root).
    spool: PathBuf,
    /// The root as given (for messages).
    url: String,
    rt: Arc<StoreRuntime>,
}

impl std::fmt::Debug for OutputStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStore")
            .field("url", &self.url)
            .finish()
    }
}

/// How long a store request is retried (5xx, 429, timeouts, refused
/// connections) before the job gives up: up to 5 minutes, backing off from
/// 0.5 s to 30 s with jitter. object_store's default (10 retries from 0.1 s)
/// can give up within 2 s, shorter than a store's brief outage.
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(500),
            max_backoff: std::time::Duration::from_secs(30),
            base: 2.0,
        },
        max_retries: 30,
        retry_timeout: std::time::Duration::from_secs(300),
    }
}

/// Spool files live for one range (minutes); one a day old was left by a
/// process that was killed, and is removed (its rows are read again).
fn remove_stale_spool(spool: &Path) {
    let Ok(rd) = std::fs::read_dir(spool) else {
        return;
    };
    let day = std::time::Duration::from_secs(24 * 3600);
    for e in rd.flatten() {
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        if stale && e.path().is_file() {
            tracing::info!(file = %e.path().display(), "removing a day-old spool file a killed run left");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Applies `[output.storage]` to a store builder; an unknown key is an
/// error naming it.
fn with_options<B, K>(
    mut builder: B,
    options: &BTreeMap<String, String>,
    with: impl Fn(B, K, String) -> B,
    bad_key: &impl Fn(&str, String) -> StoreError,
) -> Result<B, StoreError>
where
    K: std::str::FromStr<Err = object_store::Error>,
{
    for (k, v) in options {
        let key: K = k
            .parse()
            .map_err(|e: object_store::Error| bad_key(k, e.to_string()))?;
        builder = with(builder, key, v.clone());
    }
    Ok(builder)
}

/// The store's own runtime. Dropped without waiting, so a store may be
/// dropped anywhere (a runtime dropped inside async code would panic).
struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl OutputStore {
    /// The store with its own runtime.
    fn with_runtime(
        inner: Arc<dyn ObjectStore>,
        prefix: ObjPath,
        local: Option<PathBuf>,
        spool: &Path,
        url: String,
    ) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("verbatim-store")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io {
                op: "starting the store runtime for",
                path: spool.to_path_buf(),
                source,
            })?;
        Ok(Self {
            inner,
            prefix,
            local,
            spool: spool.to_path_buf(),
            url,
            rt: Arc::new(StoreRuntime(Some(rt))),
        })
    }

    /// A local folder (created if absent) as the store, with fsync on.
    pub fn local(root: &Path) -> Result<Self, StoreError> {
        super::files::create_dir_durable(root).map_err(|source| StoreError::Io {
            op: "creating",
            path: root.to_path_buf(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(root)
            .map_err(|source| StoreError::Store {
                op: "opening",
                url: root.display().to_string(),
                source,
            })?
            .with_fsync(true);
        Self::with_runtime(
            Arc::new(fs),
            ObjPath::default(),
            Some(root.to_path_buf()),
            root,
            root.display().to_string(),
        )
    }

    /// A bucket root (`s3://`, `gs://`, `az://`, `abfs://`), configured
    /// from the standard environment (AWS_*, GOOGLE_*, AZURE_*) and then
    /// `options` (object_store's own keys, e.g. `aws_endpoint`). Parts are
    /// spooled under `spool` before upload.
    pub fn remote(
        url: &str,
        options: &BTreeMap<String, String>,
        spool: &Path,
    ) -> Result<Self, StoreError> {
        let open_err = |message: String, fix: &str| StoreError::Open {
            url: url.to_string(),
            message,
            fix: fix.to_string(),
        };
        let parsed = url::Url::parse(url)
            .map_err(|e| open_err(e.to_string(), "write the root as s3://bucket/prefix"))?;
        let bucket_fix =
            "write the root as s3://bucket/prefix, gs://bucket/prefix or az://container/prefix";
        let prefix = ObjPath::parse(parsed.path().trim_start_matches('/'))
            .map_err(|e| open_err(e.to_string(), bucket_fix))?;
        let bad_key = |k: &str, e: String| {
            open_err(
                format!("[output.storage] key {k:?}: {e}"),
                "use object_store's key names (e.g. aws_region, aws_endpoint, aws_allow_http, google_service_account, azure_storage_account_name)",
            )
        };
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match parsed.scheme() {
            "s3" | "s3a" => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                // Create-if-absent (If-None-Match: *) fences stale
                // writers; S3 and most S3-compatible stores honour it.
                let b = AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry_config())
                    .with_config(AmazonS3ConfigKey::ConditionalPut, "etag");
                with_options(b, options, AmazonS3Builder::with_config, &bad_key)?
                    .build()
                    .map(|s| Arc::new(s) as _)
            }
            "gs" => {
                use object_store::gcp::GoogleCloudStorageBuilder as B;
                let b = B::from_env().with_url(url).with_retry(retry_config());
                with_options(b, options, B::with_config, &bad_key)?
                    .build()
                    .map(|s| Arc::new(s) as _)
            }
            "az" | "abfs" | "abfss" | "azure" => {
                use object_store::azure::MicrosoftAzureBuilder as B;
                let b = B::from_env().with_url(url).with_retry(retry_config());
                with_options(b, options, B::with_config, &bad_key)?
                    .build()
                    .map(|s| Arc::new(s) as _)
            }
            other => {
                return Err(open_err(
                    format!("`{other}://` is not a supported store"),
                    "use a local folder, file:///path, s3://, gs://, az:// or abfs://",
                ))
            }
        };
        let inner = built.map_err(|e| open_err(e.to_string(), bucket_fix))?;
        std::fs::create_dir_all(spool).map_err(|source| StoreError::Io {
            op: "creating the spool folder",
            path: spool.to_path_buf(),
            source,
        })?;
        remove_stale_spool(spool);
        let store = Self::with_runtime(
            inner,
            prefix,
            None,
            spool,
            url.trim_end_matches('/').to_string(),
        )?;
        store.probe()?;
        Ok(store)
    }

    /// The store `[output]` names: its folder, or its bucket with
    /// `[output.storage]` and the spool folder.
    pub fn open(cfg: &crate::config::OutputConfig) -> Result<Self, StoreError> {
        match cfg.bucket_url() {
            Some(url) => {
                let spool = cfg
                    .spool_dir
                    .clone()
                    .unwrap_or_else(|| std::env::temp_dir().join("verbatim-spool"));
                Self::remote(url, &cfg.storage, &spool)
            }
            None => Self::local(&cfg.root),
        }
    }

    /// A store over any `object_store` (tests: the in-memory store).
    pub fn with_store(inner: Arc<dyn ObjectStore>, spool: &Path) -> Result<Self, StoreError> {
        Self::with_runtime(inner, ObjPath::default(), None, spool, "memory://".into())
    }

    /// Lists the root once, so a bucket that is missing, unreachable or
    /// refuses the credentials stops the job at start with the fix (after
    /// the store's own retries), not at its first commit.
    pub fn probe(&self) -> Result<(), StoreError> {
        let (s, p) = (self.inner.clone(), self.prefix.clone());
        match self.block(async move { s.list_with_delimiter(Some(&p)).await }) {
            Ok(_) => Ok(()),
            Err(e) => {
                let fix = fix_for_store(&e, &self.url);
                let fix = fix.strip_prefix(". Fix: ").map_or_else(
                    || {
                        format!(
                            "check that {} exists and that output.root and [output.storage] (or the AWS_*/GOOGLE_*/AZURE_* environment) point at it",
                            bucket_of(&self.url)
                        )
                    },
                    str::to_string,
                );
                Err(StoreError::Open {
                    url: self.url.clone(),
                    message: e.to_string(),
                    fix,
                })
            }
        }
    }

    /// The root as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local folder, when the root is on this machine.
    pub fn local_root(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// Where the file for `rel` is written before it is staged: in place for
    /// a local root, in the spool folder for a bucket.
    pub fn write_path(&self, rel: &str) -> PathBuf {
        match &self.local {
            Some(root) => root.join(rel),
            None => self.spool.join(rel.replace('/', "%2F")),
        }
    }

    fn full(&self, rel: &str) -> ObjPath {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    fn url_of(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }

    /// Runs a store future on the store's runtime and waits for it.
    fn block<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if let Some(rt) = &self.rt.0 {
            rt.spawn(async move {
                let _ = tx.send(f.await);
            });
        }
        match rx.recv() {
            Ok(v) => v,
            // The task panicked: surface it on this thread.
            Err(_) => panic!("a store task panicked"),
        }
    }

    fn err(&self, op: &'static str, rel: &str) -> impl FnOnce(object_store::Error) -> StoreError {
        let url = self.url_of(rel);
        move |source| StoreError::Store { op, url, source }
    }

    /// Creates `rel` with `bytes` only if nothing is there. Returns `false`
    /// when the object already exists (another writer created it first).
    pub fn put_if_absent(&self, rel: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        let (s, p) = (self.inner.clone(), self.full(rel));
        let res = self.block(async move {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            s.put_opts(&p, PutPayload::from(bytes), opts).await
        });
        match res {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.err("creating", rel)(e)),
        }
    }

    /// Writes `rel` whole, replacing what was there (a reader sees the old
    /// object or the new one).
    pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        if let Some(root) = &self.local {
            // On the calling thread, as rename and delete: each thread of
            // the store runtime's blocking pool grows its own heap arena.
            let path = root.join(rel);
            return super::files::write_atomic(&path, &bytes).map_err(|source| StoreError::Io {
                op: "writing",
                path,
                source,
            });
        }
        let (s, p) = (self.inner.clone(), self.full(rel));
        self.block(async move { s.put(&p, PutPayload::from(bytes)).await })
            .map(|_| ())
            .map_err(self.err("writing", rel))
    }

    /// Makes the file written at [`OutputStore::write_path`]`(rel)` the
    /// object `rel`: an fsync for a local root; for a bucket, an upload in
    /// chunks, then the spool file is removed. Returns its size.
    pub fn stage(&self, rel: &str) -> Result<u64, StoreError> {
        let file = self.write_path(rel);
        let io = |op: &'static str| {
            let path = file.clone();
            move |source| StoreError::Io { op, path, source }
        };
        if self.local.is_some() {
            let f = std::fs::File::open(&file).map_err(io("opening"))?;
            f.sync_all().map_err(io("fsyncing"))?;
            return f.metadata().map(|m| m.len()).map_err(io("reading"));
        }
        let mut f = std::fs::File::open(&file).map_err(io("opening"))?;
        let len = f.metadata().map(|m| m.len()).map_err(io("reading"))?;
        if len as usize <= UPLOAD_CHUNK {
            let mut bytes = Vec::with_capacity(len as usize);
            f.read_to_end(&mut bytes).map_err(io("reading"))?;
            self.put(rel, bytes)?;
        } else {
            let (s, p) = (self.inner.clone(), self.full(rel));
            let url = self.url_of(rel);
            let path = file.clone();
            // The whole upload runs on the store's runtime (the multipart
            // writer spawns its part uploads there); at most
            // UPLOAD_CONCURRENCY chunks are held in memory.
            self.block(async move {
                let store_err = |op: &'static str| {
                    let url = url.clone();
                    move |source| StoreError::Store { op, url, source }
                };
                let upload = s
                    .put_multipart(&p)
                    .await
                    .map_err(store_err("starting an upload of"))?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK);
                let mut buf = vec![0u8; UPLOAD_CHUNK];
                loop {
                    let n = match f.read(&mut buf) {
                        Ok(n) => n,
                        Err(source) => {
                            let _ = w.abort().await;
                            return Err(StoreError::Io {
                                op: "reading",
                                path,
                                source,
                            });
                        }
                    };
                    if n == 0 {
                        break;
                    }
                    w.write(&buf[..n]);
                    if let Err(e) = w.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                        let _ = w.abort().await;
                        return Err(store_err("uploading")(e));
                    }
                }
                w.finish()
                    .await
                    .map(|_| ())
                    .map_err(store_err("finishing the upload of"))
            })?;
        }
        std::fs::remove_file(&file).map_err(io("removing the spooled"))?;
        Ok(len)
    }

    /// Moves `from` to `to` (a rename on a local root; copy then delete on
    /// a bucket).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        if let Some(root) = &self.local {
            // On this machine's disk: the rename itself, on this thread.
            let (f, t) = (root.join(from), root.join(to));
            if let Some(dir) = t.parent() {
                super::files::create_dir_durable(dir).map_err(|source| StoreError::Io {
                    op: "creating",
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            return std::fs::rename(&f, &t).map_err(|source| StoreError::Io {
                op: "publishing",
                path: f,
                source,
            });
        }
        let (s, f, t) = (self.inner.clone(), self.full(from), self.full(to));
        self.block(async move { s.rename(&f, &t).await })
            .map_err(self.err("publishing", from))
    }

    /// Whether `rel` exists.
    pub fn exists(&self, rel: &str) -> Result<bool, StoreError> {
        Ok(self.head(rel)?.is_some())
    }

    /// What the store says of `rel` without reading it (`None`: absent).
    pub fn head(&self, rel: &str) -> Result<Option<Listed>, StoreError> {
        if let Some(root) = &self.local {
            let path = root.join(rel);
            return match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => Ok(Some(local_listed(rel.to_string(), &m))),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(StoreError::Io {
                    op: "checking",
                    path,
                    source,
                }),
            };
        }
        let (s, p) = (self.inner.clone(), self.full(rel));
        match self.block(async move { s.head(&p).await }) {
            Ok(m) => Ok(Some(Listed {
                path: rel.to_string(),
                modified: m.last_modified,
                size: m.size,
                e_tag: m.e_tag,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("checking", rel)(e)),
        }
    }

    /// The bytes of `rel`.
    pub fn get(&self, rel: &str) -> Result<Vec<u8>, StoreError> {
        if let Some(root) = &self.local {
            let path = root.join(rel);
            return std::fs::read(&path).map_err(|source| StoreError::Io {
                op: "reading",
                path,
                source,
            });
        }
        let (s, p) = (self.inner.clone(), self.full(rel));
        self.block(async move {
            let r = s.get(&p).await?;
            r.bytes().await
        })
        .map(|b| b.to_vec())
        .map_err(self.err("reading", rel))
    }

    /// The bytes of `rel`, `None` when it does not exist.
    pub fn get_opt(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(rel) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes `rel`; absent is fine.
    pub fn delete(&self, rel: &str) -> Result<(), StoreError> {
        if let Some(root) = &self.local {
            let p = root.join(rel);
            return match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                    op: "removing",
                    path: p,
                    source: e,
                }),
                _ => Ok(()),
            };
        }
        let (s, p) = (self.inner.clone(), self.full(rel));
        match self.block(async move { s.delete(&p).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("removing", rel)(e)),
        }
    }

    /// Every object under the folder `rel` (recursively), sorted by path.
    pub fn list(&self, rel: &str) -> Result<Vec<Listed>, StoreError> {
        if let Some(root) = &self.local {
            return list_local(root, rel);
        }
        let (s, p) = (self.inner.clone(), self.full(rel));
        let base = self.prefix.clone();
        let mut out = self
            .block(async move {
                let mut v = Vec::new();
                let mut stream = s.list(Some(&p));
                while let Some(m) = stream.next().await {
                    match m {
                        Ok(m) => v.push(m),
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(v)
            })
            .map_err(self.err("listing", rel))?
            .into_iter()
            .filter_map(|m| {
                let full = m.location.as_ref();
                let path = if base.as_ref().is_empty() {
                    full.to_string()
                } else {
                    full.strip_prefix(base.as_ref())?
                        .trim_start_matches('/')
                        .to_string()
                };
                Some(Listed {
                    path,
                    modified: m.last_modified,
                    size: m.size,
                    e_tag: m.e_tag,
                })
            })
            .collect::<Vec<_>>();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Makes `dest/<folder>` a copy of each of `folders`: objects not there,
    /// or whose size or time differs from the copy's, are fetched (the copy
    /// takes the object's time), local files gone from the store removed.
    /// Committed files never change under their names, so a second sync
    /// fetches only what is new and what was rewritten (the theme
    /// snapshot, `action_status/`). Returns the number fetched.
    pub fn sync_down(&self, dest: &Path, folders: &[&str]) -> Result<usize, StoreError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { op, path, source }
        };
        let mut fetched = 0;
        for folder in folders {
            let listed = self.list(folder)?;
            let want: std::collections::HashSet<PathBuf> =
                listed.iter().map(|l| dest.join(&l.path)).collect();
            for l in &listed {
                let local = dest.join(&l.path);
                let at = std::time::SystemTime::from(l.modified);
                if std::fs::metadata(&local)
                    .is_ok_and(|m| m.len() == l.size && m.modified().is_ok_and(|t| t == at))
                {
                    continue;
                }
                let bytes = self.get(&l.path)?;
                super::files::write_atomic(&local, &bytes).map_err(io("writing", &local))?;
                std::fs::File::options()
                    .write(true)
                    .open(&local)
                    .and_then(|f| f.set_modified(at))
                    .map_err(io("dating", &local))?;
                fetched += 1;
            }
            let mut stack = vec![dest.join(folder)];
            while let Some(d) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if !want.contains(&p) {
                        std::fs::remove_file(&p).map_err(io("removing", &p))?;
                    }
                }
            }
        }
        Ok(fetched)
    }

    /// A local folder holding `folders` as they are now, for code that
    /// reads Parquet files by path: the root itself when it is local; for a
    /// bucket, a copy under the spool folder brought up to date with
    /// [`OutputStore::sync_down`] (new files only).
    pub fn readable(&self, folders: &[&str]) -> Result<PathBuf, StoreError> {
        if let Some(root) = &self.local {
            return Ok(root.clone());
        }
        let cache = self.spool.join(".read-cache");
        self.sync_down(&cache, folders)?;
        Ok(cache)
    }

    /// The names of the folders directly under `rel`.
    pub fn folders(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        let (s, p) = (self.inner.clone(), self.full(rel));
        let listed = match self.block(async move { s.list_with_delimiter(Some(&p)).await }) {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(self.err("listing", rel)(e)),
        };
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// fsyncs the local folders of `rels` (renames inside them then survive
    /// a power cut); nothing for a bucket.
    pub fn sync_dirs<'a>(&self, rels: impl IntoIterator<Item = &'a str>) -> Result<(), StoreError> {
        let Some(root) = &self.local else {
            return Ok(());
        };
        let mut dirs: Vec<PathBuf> = rels
            .into_iter()
            .filter_map(|r| root.join(r).parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            super::files::fsync_dir(&d).map_err(|source| StoreError::Io {
                op: "fsyncing",
                path: d.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_if_absent_lets_one_writer_win() {
        let dir = tempfile::tempdir().unwrap();
        let s = OutputStore::local(dir.path()).unwrap();
        assert!(s
            .put_if_absent("_commits/a/o1.json", b"one".to_vec())
            .unwrap());
        assert!(!s
            .put_if_absent("_commits/a/o1.json", b"two".to_vec())
            .unwrap());
        assert_eq!(s.get("_commits/a/o1.json").unwrap(), b"one");
        let mem =
            OutputStore::with_store(Arc::new(object_store::memory::InMemory::new()), dir.path())
                .unwrap();
        assert!(mem.put_if_absent("x", b"1".to_vec()).unwrap());
        assert!(!mem.put_if_absent("x", b"2".to_vec()).unwrap());
    }

    /// A local root reads and writes on the calling thread; what it lists,
    /// heads and gets is what object_store's own view of the folder is.
    #[test]
    fn a_local_root_sees_what_local_file_system_sees() {
        let dir = tempfile::tempdir().unwrap();
        let s = OutputStore::local(dir.path()).unwrap();
        s.put("themes/state.json", b"{}".to_vec()).unwrap();
        s.put("themes/versions/v000001.json", b"[1]".to_vec())
            .unwrap();
        s.put("themes/state.json", b"{\"v\":2}".to_vec()).unwrap();
        std::fs::write(dir.path().join("themes/versions/v2.json.tmp"), b"half").unwrap();
        let ours: Vec<(String, u64)> = s
            .list("themes")
            .unwrap()
            .into_iter()
            .map(|l| (l.path, l.size))
            .collect();
        assert_eq!(
            ours,
            [
                ("themes/state.json".to_string(), 7),
                ("themes/versions/v000001.json".to_string(), 3)
            ]
        );
        let fs = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let mut theirs: Vec<String> = s
            .block(async move {
                fs.list(Some(&ObjPath::from("themes")))
                    .collect::<Vec<_>>()
                    .await
            })
            .into_iter()
            .map(|m| m.unwrap().location.to_string())
            .filter(|p| !p.ends_with(".tmp"))
            .collect();
        theirs.sort();
        assert_eq!(ours.iter().map(|o| o.0.clone()).collect::<Vec<_>>(), theirs);
        assert_eq!(s.get("themes/state.json").unwrap(), b"{\"v\":2}");
        assert_eq!(s.head("themes/state.json").unwrap().unwrap().size, 7);
        assert!(s.head("themes/curation.json").unwrap().is_none());
        assert!(s.head("themes").unwrap().is_none(), "a folder is no object");
        assert!(s.get("themes/curation.json").unwrap_err().is_not_found());
        assert!(s.list("nothing/here").unwrap().is_empty());
    }

    #[test]
    fn stage_uploads_big_files_in_chunks_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let mem =
            OutputStore::with_store(Arc::new(object_store::memory::InMemory::new()), dir.path())
                .unwrap();
        let rel = "_staging/t-p0/a.parquet";
        let data: Vec<u8> = (0..(UPLOAD_CHUNK * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(mem.write_path(rel), &data).unwrap();
        assert_eq!(mem.stage(rel).unwrap(), data.len() as u64);
        assert!(!mem.write_path(rel).exists(), "the spool file is removed");
        assert_eq!(mem.get(rel).unwrap(), data);
        mem.rename(rel, "comments/dt=2026-01-01/a.parquet").unwrap();
        let l = mem.list("comments").unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].path, "comments/dt=2026-01-01/a.parquet");
        assert!(!mem.exists(rel).unwrap());
        mem.delete(rel).unwrap();
    }

    #[test]
    fn unknown_schemes_and_keys_name_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let e = OutputStore::remote("ftp://x/y", &BTreeMap::new(), dir.path()).unwrap_err();
        assert!(e.to_string().contains("Fix: use a local folder"), "{e}");
        let opts = BTreeMap::from([("aws_colour".to_string(), "blue".to_string())]);
        let e = OutputStore::remote("s3://b/p", &opts, dir.path()).unwrap_err();
        assert!(e.to_string().contains("aws_colour"), "{e}");
    }
}
