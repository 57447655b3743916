//! One part of an open range: the rows of one table and one event day, held
//! in memory while they are few and written to a hidden temporary Parquet
//! file once they are many.
//!
//! Why: every open Parquet writer costs memory whatever it holds (the parquet
//! crate gives each column its own zstd compression and decompression
//! contexts; about 100 KB per column, 5–6 MB for a `comments/` file), so a
//! stream whose event times span many days, with one writer per partition,
//! day and table, grew past 1 GB (issue 16; measured with heaptrack in the
//! soak bench). A part opens its writer only once its rows pass
//! [`Part::SPILL_BYTES`]; a straggler day's few rows stay as Arrow batches
//! until the range is committed, and are then written by one short-lived
//! writer at a time.

use std::fs::File;
use std::path::PathBuf;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::{io_err, SinkError};

/// The rows of one table and day in an open range.
pub(super) struct Part {
    /// The local file it is written to (created when the writer opens).
    pub tmp: PathBuf,
    /// Its staging name in the store (see [`super::commit`]).
    pub staging: String,
    schema: SchemaRef,
    writer: Option<ArrowWriter<File>>,
    pending: Vec<RecordBatch>,
    pending_bytes: usize,
    /// Rows appended so far.
    pub rows: u64,
}

impl Part {
    /// Rows held as Arrow batches past this size go to a Parquet writer.
    pub const SPILL_BYTES: usize = 4 * 1024 * 1024;

    /// An empty part that will write to `tmp` (not created yet), staged
    /// as `staging`.
    pub fn new(tmp: PathBuf, staging: String, schema: SchemaRef) -> Self {
        Self {
            tmp,
            staging,
            schema,
            writer: None,
            pending: Vec::new(),
            pending_bytes: 0,
            rows: 0,
        }
    }

    /// Appends rows; opens the writer once the part holds `spill_bytes`.
    pub fn append(
        &mut self,
        rb: RecordBatch,
        props: &WriterProperties,
        spill_bytes: usize,
    ) -> Result<(), SinkError> {
        self.rows += rb.num_rows() as u64;
        if let Some(w) = &mut self.writer {
            return w.write(&rb).map_err(|source| SinkError::Parquet {
                path: self.tmp.clone(),
                source,
            });
        }
        self.pending_bytes += rb.get_array_memory_size();
        self.pending.push(rb);
        if self.pending_bytes >= spill_bytes {
            self.spill(props)?;
        }
        Ok(())
    }

    /// Opens the writer (creating the temporary file) and hands it the rows
    /// held so far.
    pub fn spill(&mut self, props: &WriterProperties) -> Result<(), SinkError> {
        let w = self.take_writer(props)?;
        self.writer = Some(w);
        Ok(())
    }

    /// The writer, opened if need be, holding every row appended so far.
    fn take_writer(&mut self, props: &WriterProperties) -> Result<ArrowWriter<File>, SinkError> {
        let mut w = match self.writer.take() {
            Some(w) => w,
            None => {
                let f = File::create(&self.tmp).map_err(io_err("creating", &self.tmp))?;
                ArrowWriter::try_new(f, self.schema.clone(), Some(props.clone())).map_err(
                    |source| SinkError::Parquet {
                        path: self.tmp.clone(),
                        source,
                    },
                )?
            }
        };
        for rb in self.pending.drain(..) {
            w.write(&rb).map_err(|source| SinkError::Parquet {
                path: self.tmp.clone(),
                source,
            })?;
        }
        self.pending_bytes = 0;
        Ok(w)
    }

    /// Writes the current row group to the file, releasing its memory.
    pub fn flush(&mut self, props: &WriterProperties) -> Result<(), SinkError> {
        self.spill(props)?;
        if let Some(w) = &mut self.writer {
            w.flush().map_err(|source| SinkError::Parquet {
                path: self.tmp.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Whether a Parquet writer is open.
    pub fn has_writer(&self) -> bool {
        self.writer.is_some()
    }

    /// Memory held for rows not yet on disk: Arrow batches plus the writer's
    /// current row group.
    pub fn buffered_bytes(&self) -> usize {
        self.pending_bytes + self.writer.as_ref().map_or(0, |w| w.in_progress_size())
    }

    /// The part's size so far: bytes on disk plus buffered.
    pub fn bytes(&self) -> u64 {
        let written = self.writer.as_ref().map_or(0, |w| w.bytes_written());
        (written + self.buffered_bytes()) as u64
    }

    /// Writes whatever is held and closes the file; returns its staging
    /// name (the store fsyncs or uploads it).
    pub fn finish(mut self, props: &WriterProperties) -> Result<String, SinkError> {
        let w = self.take_writer(props)?;
        w.into_inner().map_err(|source| SinkError::Parquet {
            path: self.tmp.clone(),
            source,
        })?;
        Ok(self.staging)
    }

    /// Drops the rows and removes the temporary file if it was created.
    pub fn discard(self) {
        let created = self.writer.is_some();
        drop(self.writer);
        if created {
            if let Err(e) = std::fs::remove_file(&self.tmp) {
                tracing::warn!(file = %self.tmp.display(), error = %e, "could not remove an aborted temporary file");
            }
        }
    }
}
