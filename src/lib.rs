//! # verbatim
//!
//! A stream job that reads customer-feedback comments from Kafka, enriches
//! them with local transformer models, and writes Parquet that analysts query
//! with DuckDB, Spark or Trino.
//!
//! One comment's path, one module per stage:
//!
//! | stage | module | what happens |
//! |---|---|---|
//! | source | [`source`] | a Kafka consumer-group member (or a file for `ingest`) hands over raw messages |
//! | decode | [`decode`] | bytes become a [`comment::Comment`] or a [`comment::Rejection`] with a reason |
//! | batch  | [`batch`]  | comments are gathered by count and age |
//! | nlp    | [`nlp`]    | operators enrich the batch: [`nlp::redact`] → [`nlp::language`] → [`nlp::flags`] → [`nlp::embed`] |
//! | sink   | [`sink`]   | rows are appended to Parquet; files are committed atomically |
//! | commit | [`source::kafka::KafkaCommitter`] | Kafka offsets are committed only after the files are durable |
//!
//! [`pipeline`] wires them together; [`config`] is the pipeline file.
#![warn(missing_docs)]

pub mod batch;
pub mod comment;
pub mod config;
pub mod decode;
pub mod demo;
pub mod eval;
pub mod eval_themes;
pub mod failpoint;
pub mod kafka_mock;
pub mod metrics;
pub mod nlp;
pub mod pipeline;
pub mod report;
pub mod sink;
pub mod source;
pub mod theme_admin;
pub mod theme_daily;
pub mod theme_refit;
pub mod train;
