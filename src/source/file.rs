//! File source for `verbatim ingest`: a JSONL or CSV backfill read through
//! the same pipeline as the stream.
//!
//! A file is treated as one partition (`file:<name>`, partition 0) whose
//! offsets are the 0-based line (JSONL) or record (CSV) numbers, so the same
//! file-name progress applies: ingesting a file again resumes where the last
//! run committed and never duplicates a row. A blank JSONL line is a message
//! with an empty value, so it lands in `rejected/` as `empty_payload` like
//! every other record that is not a comment.
//!
//! [`check_input`] refuses, before anything is read, what is not a text
//! file: a missing path, a directory, a compressed or binary file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use super::{SourceError, SourceEvent};
use crate::comment::{RawMessage, SourceCoords};

/// How a backfill file is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    /// From the extension: `.csv` is CSV, anything else one message per line.
    Auto,
    /// One message per line (JSON objects, or plain text with `input.format = "text"`).
    Jsonl,
    /// CSV with a header row; each record becomes a JSON object of its columns.
    Csv,
}

impl FileFormat {
    /// Resolves `Auto` from the file name.
    pub fn resolve(self, path: &Path) -> FileFormat {
        match self {
            FileFormat::Auto => {
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
                {
                    FileFormat::Csv
                } else {
                    FileFormat::Jsonl
                }
            }
            f => f,
        }
    }
}

/// The pseudo-topic a file's rows are recorded under.
pub fn topic_for(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("file:{name}")
}

/// Reads `path` on the calling (blocking) thread and sends every message from
/// offset `start` on, then [`SourceEvent::Stopped`]. Shows a progress bar on
/// a terminal.
pub fn read_file(
    path: &Path,
    format: FileFormat,
    start: i64,
    events: mpsc::Sender<SourceEvent>,
) -> Result<u64, SourceError> {
    let err = |source| SourceError::File {
        path: PathBuf::from(path),
        source,
    };
    let f = File::open(path).map_err(err)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{bar:30}] {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let topic = topic_for(path);
    let coords = |offset: i64| SourceCoords {
        topic: topic.clone(),
        partition: 0,
        offset,
        kafka_timestamp: None,
    };
    let counted = CountingReader {
        inner: f,
        bar: bar.clone(),
    };
    let mut sent = 0u64;
    let mut send = |offset: i64, payload: Vec<u8>| -> bool {
        if offset < start {
            return true;
        }
        sent += 1;
        events
            .blocking_send(SourceEvent::Message(RawMessage {
                coords: coords(offset),
                key: None,
                payload: Some(payload),
            }))
            .is_ok()
    };
    match format.resolve(path) {
        FileFormat::Csv => {
            let mut rdr = csv::ReaderBuilder::new()
                .flexible(true)
                .from_reader(counted);
            let headers = rdr.byte_headers().map_err(|e| err(e.into()))?.clone();
            let names: Vec<String> = headers
                .iter()
                .map(|h| String::from_utf8_lossy(h).trim().to_string())
                .collect();
            for (i, rec) in rdr.byte_records().enumerate() {
                let rec = rec.map_err(|e| err(e.into()))?;
                let payload = csv_record_payload(&names, &rec);
                if !send(i as i64, payload) {
                    break;
                }
            }
        }
        _ => {
            let mut rdr = BufReader::new(counted);
            let mut line = Vec::new();
            let mut i: i64 = 0;
            loop {
                line.clear();
                let n = rdr.read_until(b'\n', &mut line).map_err(err)?;
                if n == 0 {
                    break;
                }
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    line.clear();
                }
                if !send(i, line.clone()) {
                    break;
                }
                i += 1;
            }
        }
    }
    bar.finish_and_clear();
    let _ = events.blocking_send(SourceEvent::Stopped);
    Ok(sent)
}

/// Checks that `path` is a readable text file worth ingesting: not missing,
/// not a directory, not compressed or binary (judged from its first 8 KiB).
pub fn check_input(path: &Path) -> Result<(), SourceError> {
    let not = |what: &str, fix: &str| SourceError::NotText {
        path: path.to_path_buf(),
        what: what.to_string(),
        fix: fix.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => not(
            "no such file",
            "pass the path of a JSONL or CSV file to ingest",
        ),
        _ => SourceError::File {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        return Err(not(
            "is a directory",
            "pass one file; to ingest every file of a folder, run `verbatim ingest` once per file (each resumes on its own)",
        ));
    }
    let mut head = Vec::with_capacity(8192);
    File::open(path)
        .and_then(|f| f.take(8192).read_to_end(&mut head))
        .map_err(|source| SourceError::File {
            path: path.to_path_buf(),
            source,
        })?;
    match sniff(&head) {
        Some(what) => Err(not(
            what,
            "ingest reads text: one JSON object (or, with input.format = \"text\", one comment) per line, or CSV with a header row; convert or decompress the file first",
        )),
        None => Ok(()),
    }
}

/// What a file's first bytes say it is, when that is not text.
fn sniff(head: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 6] = [
        (b"\x1f\x8b", "is gzip-compressed"),
        (b"PAR1", "is a Parquet file"),
        (b"PK\x03\x04", "is a zip archive (or an Excel workbook)"),
        (b"\x28\xb5\x2f\xfd", "is zstd-compressed"),
        (b"BZh", "is bzip2-compressed"),
        (b"\x89PNG", "is a PNG image"),
    ];
    if let Some((_, what)) = MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return Some(what);
    }
    // Text has no NUL bytes and few control characters.
    let control = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    if head.contains(&0) || control * 20 > head.len() {
        return Some("looks binary (NUL or control bytes in its first 8 KiB)");
    }
    None
}

/// A CSV record as a JSON object payload; a record that is not UTF-8 is
/// passed on as its raw bytes so the decoder rejects it as `invalid_utf8`.
fn csv_record_payload(names: &[String], rec: &csv::ByteRecord) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    for (i, field) in rec.iter().enumerate() {
        let Ok(v) = std::str::from_utf8(field) else {
            return rec.iter().collect::<Vec<_>>().join(&b',');
        };
        let key = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("column_{}", i + 1));
        if !v.is_empty() {
            obj.insert(key, serde_json::Value::String(v.to_string()));
        }
    }
    serde_json::Value::Object(obj).to_string().into_bytes()
}

struct CountingReader<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(path: &Path, start: i64) -> Vec<RawMessage> {
        let (tx, mut rx) = mpsc::channel(1000);
        read_file(path, FileFormat::Auto, start, tx).unwrap();
        let mut out = vec![];
        while let Ok(ev) = rx.try_recv() {
            if let SourceEvent::Message(m) = ev {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn jsonl_lines_blanks_become_empty_messages_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, "{\"text\":\"a\"}\n  \n{\"text\":\"b\"}\r\nnot json\n").unwrap();
        let all = collect(&p, 0);
        assert_eq!(
            all.iter().map(|m| m.coords.offset).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            all[1].payload.as_deref(),
            Some(&b""[..]),
            "blank: empty value"
        );
        assert_eq!(all[2].payload.as_deref(), Some(&b"{\"text\":\"b\"}"[..]));
        assert_eq!(all[0].coords.topic, "file:a.jsonl");
        assert_eq!(collect(&p, 3).len(), 1);
    }

    #[test]
    fn input_check_names_what_the_file_is() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], &str); 4] = [
            ("a.jsonl.gz", b"\x1f\x8b\x08\x00rest", "is gzip-compressed"),
            ("b.parquet", b"PAR1\x15\x04", "is a Parquet file"),
            ("c.bin", &[7u8, 0, 3, 200, 1, 2, 3, 4], "looks binary"),
            ("d.jsonl", "{\"text\":\"Привет\"}\n".as_bytes(), ""),
        ];
        for (name, bytes, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            match check_input(&p) {
                Ok(()) => assert!(want.is_empty(), "{name} passed"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(!want.is_empty() && msg.contains(want), "{name}: {msg}");
                    assert!(msg.contains("Fix: ingest reads text"), "{msg}");
                }
            }
        }
        let e = check_input(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory. Fix: pass one file"), "{e}");
        let e = check_input(&dir.path().join("nope.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file. Fix:"), "{e}");
    }

    #[test]
    fn csv_records_become_objects() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.csv");
        let mut bytes = b"id,text,score\n1,\"Great, fast\",9\n2,bad \xff byte,1\n".to_vec();
        bytes.extend_from_slice(b"3,short\n");
        std::fs::write(&p, bytes).unwrap();
        let all = collect(&p, 0);
        assert_eq!(all.len(), 3);
        let v: serde_json::Value =
            serde_json::from_slice(all[0].payload.as_ref().unwrap()).unwrap();
        assert_eq!(v["text"], "Great, fast");
        assert_eq!(v["score"], "9");
        assert!(std::str::from_utf8(all[1].payload.as_ref().unwrap()).is_err());
        let v: serde_json::Value =
            serde_json::from_slice(all[2].payload.as_ref().unwrap()).unwrap();
        assert!(v.get("score").is_none());
    }
}
