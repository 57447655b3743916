//! The pipeline: one comment's path from the source to its Parquet row.
//!
//! ```text
//! source ──SourceEvent──▶ decode ──▶ batch ──▶ nlp operators ──▶ sink ──▶ commit
//! (kafka.rs / file.rs)   (decode.rs) (batch.rs)  (nlp/)          (sink/)   (offsets follow files)
//! ```
//!
//! [`Pipeline::run`] is the event loop. It decodes each message as it
//! arrives, processes a batch when it is full or old enough, commits a
//! partition's files when they are big or old enough (or the partition is
//! revoked, or the job stops), and only then commits that partition's Kafka
//! offset. Dead letters of a partition are confirmed before its files are
//! committed. CPU and file work run on blocking threads, in two stages that
//! overlap: while one batch is analysed and written (the operators after
//! `embed`, then the sink), the next one is already being embedded (the
//! operators up to `embed`). Batches still reach the sink in order.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use crate::batch::{Batcher, CommentBatch};
use crate::config::PipelineConfig;
use crate::decode::Decoder;
use crate::metrics::Metrics;
use crate::nlp::{run_operators, Operator, OperatorError};
use crate::sink::actions::{ActionRules, ActionTopic};
use crate::sink::dead_letter::DeadLetter;
use crate::sink::producer::ProduceError;
use crate::sink::store::OutputStore;
use crate::sink::{CommittedRange, ParquetSink, SinkError, TopicPartition};
use crate::source::backpressure::InFlight;
use crate::source::file::{self, FileFormat};
use crate::source::kafka::{client_config, KafkaCommitter, KafkaSource};
use crate::source::{SourceError, SourceEvent};

/// Errors that stop the job. Files not yet committed are discarded; a restart
/// recovers from the committed files.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Configuration problem found at start.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The source failed to start or read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The source reported an unrecoverable problem.
    #[error("source: {0}")]
    SourceFatal(String),
    /// Writing or committing Parquet failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// An NLP operator failed.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// The NLP stages could not be set up (model files, runtime).
    #[error(transparent)]
    Nlp(#[from] crate::nlp::NlpError),
    /// A dead letter or an action could not be delivered.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// A worker thread panicked (a bug).
    #[error("a worker thread failed: {0}")]
    Join(String),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages read.
    pub messages: u64,
    /// Comment rows committed.
    pub comments: u64,
    /// Rejected rows committed.
    pub rejected: u64,
    /// Response rows committed (follow-up events).
    pub responses: u64,
    /// Files committed.
    pub files: u64,
    /// Ranges committed (one per partition per roll).
    pub ranges: u64,
}

impl RunSummary {
    fn add(&mut self, r: &CommittedRange) {
        self.comments += r.comment_rows;
        self.rejected += r.rejected_rows;
        self.responses += r.response_rows;
        self.files += r.files.len() as u64;
        self.ranges += 1;
    }
}

/// A configured pipeline, ready to run over a source's events.
pub struct Pipeline {
    decoder: Decoder,
    batcher: Batcher,
    /// The operators up to and including `embed` (the first stage).
    operators: Vec<Box<dyn Operator>>,
    /// The operators after `embed` (the second stage, with the sink write).
    /// Empty while `pending` holds them.
    after: Vec<Box<dyn Operator>>,
    /// The batch in the second stage, if any.
    pending: Option<Pending>,
    sink: Option<ParquetSink>,
    dead_letter: Option<DeadLetter>,
    actions: Option<ActionTopic>,
    committer: Option<KafkaCommitter>,
    /// The source's in-flight budget (Kafka only), and what this loop holds
    /// of it: bytes and messages received since the last batch was written.
    in_flight: Option<(Arc<InFlight>, u64, u64)>,
    metrics: Metrics,
    summary: RunSummary,
    /// Whether a batch is also cut when its oldest message waited
    /// `batch.max_wait_ms` (a stream), or only when full (a file: its rows
    /// are all there, and batches cut by the clock would differ from run
    /// to run, and with them int8 vectors and themes).
    cut_on_time: bool,
}

/// Every operator the pipeline builds, in the order it runs them: its
/// [`Operator::name`], its module and its file. README's and the crate
/// docs' stage tables are tested against this list, and the pipeline
/// builds its operators in this order ([`build_operators`]).
pub const OPERATORS: [(&str, &str, &str); 7] = [
    ("redact", "nlp::redact", "src/nlp/redact.rs"),
    ("language", "nlp::language", "src/nlp/language.rs"),
    ("flags", "nlp::flags", "src/nlp/flags.rs"),
    ("embed", "nlp::embed", "src/nlp/embed.rs"),
    ("analyze", "nlp::analyze", "src/nlp/analyze.rs"),
    ("themes", "themes::online", "src/themes/online.rs"),
    ("history", "history::repeat", "src/history/repeat.rs"),
];

/// Builds the enrichment operators the pipeline file asks for, in the order
/// of [`OPERATORS`] (with `extra`, operators added by the embedding
/// application, right after redaction), and the size of the `embedding`
/// column if embeddings are stored.
pub fn build_operators(
    cfg: &PipelineConfig,
    extra: Vec<Box<dyn Operator>>,
) -> Result<Operators, PipelineError> {
    let mut operators: Vec<Box<dyn Operator>> = Vec::new();
    if cfg.privacy.redact_pii {
        // First, so nothing downstream (models, files) sees the originals.
        let redact = crate::nlp::redact::RedactOperator::new()
            .map_err(|e| PipelineError::Nlp(crate::nlp::NlpError::Pattern(e.to_string())))?;
        operators.push(Box::new(redact));
    }
    operators.extend(extra);
    let mut embedding_dim = None;
    if let Some(nlp) = &cfg.nlp {
        let stages = crate::nlp::operators_for(nlp, &cfg.flags, &cfg.targets)?;
        operators.extend(stages.operators);
        embedding_dim = stages.embedding_dim;
        if cfg.themes.enabled {
            let store = OutputStore::open(&cfg.output).map_err(SinkError::from)?;
            operators.push(Box::new(crate::themes::online::ThemeOperator::open(
                &cfg.themes.calibrated(&stages.calibration),
                crate::themes::store::ThemeStore::new(store),
                stages.dim,
                &stages.model_languages,
            )?));
        }
        if let Some(op) = repeat_operator(cfg)? {
            operators.push(Box::new(op));
        }
    }
    Ok(Operators {
        operators,
        embedding_dim,
    })
}

/// The `history` operator, when comments carry a customer id, aspects are
/// read (`nlp.analyze`) and `actions.repeat_window` is not `"off"`.
fn repeat_operator(
    cfg: &PipelineConfig,
) -> Result<Option<crate::history::repeat::RepeatOperator>, PipelineError> {
    let analyze = cfg.nlp.as_ref().is_some_and(|n| n.analyze);
    let Some(window) = cfg.actions.repeat_window().ok().flatten() else {
        return Ok(None);
    };
    if !(analyze && cfg.input.fields.customer_id.is_some()) {
        return Ok(None);
    }
    let store = OutputStore::open(&cfg.output).map_err(SinkError::from)?;
    Ok(Some(crate::history::repeat::RepeatOperator::new(
        store, window,
    )))
}

/// The enrichment operators of a pipeline, as [`build_operators`] made them.
pub struct Operators {
    /// The operators, in the order they run.
    pub operators: Vec<Box<dyn Operator>>,
    /// Size of the `embedding` column, if embeddings are stored.
    pub embedding_dim: Option<usize>,
}

/// Builds a [`Pipeline`] from a configuration.
pub struct PipelineBuilder {
    cfg: PipelineConfig,
    operators: Vec<Box<dyn Operator>>,
    metrics: Metrics,
    /// Read every record as a follow-up event (`ingest --table responses`).
    responses_only: bool,
}

impl PipelineBuilder {
    /// Starts from a validated configuration.
    pub fn new(cfg: PipelineConfig) -> Self {
        Self {
            cfg,
            operators: Vec::new(),
            metrics: Metrics::new(),
            responses_only: false,
        }
    }

    /// Reads every record as a follow-up event into `responses/` (for
    /// `verbatim ingest --table responses`); Kafka runs tell the two apart
    /// by topic (`responses.topic`).
    pub fn responses_only(mut self) -> Self {
        self.responses_only = true;
        self
    }

    /// Adds an NLP operator (run in the order added).
    pub fn operator(mut self, op: Box<dyn Operator>) -> Self {
        self.operators.push(op);
        self
    }

    /// Uses this metrics registry (to serve it, or read it in tests).
    pub fn metrics(mut self, m: Metrics) -> Self {
        self.metrics = m;
        self
    }

    /// The configuration being built.
    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    fn build(
        self,
        store: OutputStore,
        committer: Option<KafkaCommitter>,
        in_flight: Option<Arc<InFlight>>,
        dead_letter: Option<DeadLetter>,
        actions: Option<ActionTopic>,
        response_topics: Vec<String>,
    ) -> Result<Pipeline, PipelineError> {
        let mut stamp = crate::sink::stamp_for(&self.cfg);
        let Operators {
            mut operators,
            embedding_dim,
        } = build_operators(&self.cfg, self.operators)?;
        stamp.embedding_dim = embedding_dim;
        let per_mention =
            self.cfg.themes.enabled && self.cfg.themes.unit == crate::config::ThemeUnit::Mention;
        stamp.mention_embedding_dim = embedding_dim.filter(|_| per_mention);
        let mut sink = ParquetSink::new(&self.cfg.output, store, stamp, self.metrics.clone())?;
        if self.cfg.nlp.is_some() && !self.cfg.actions.flags.is_empty() {
            sink = sink.with_actions(ActionRules::new(&self.cfg.actions.flags));
        }
        for op in operators.iter_mut() {
            op.on_start(&self.metrics)?;
        }
        self.metrics.health.set_models_loaded();
        let after = split_after_embed(&mut operators);
        Ok(Pipeline {
            decoder: Decoder::new(self.cfg.input.clone())
                .with_customer_hasher(self.cfg.privacy.customer_hasher())
                .with_responses(response_topics, self.cfg.responses.fields.clone()),
            batcher: Batcher::new(self.cfg.batch.clone()),
            operators,
            after,
            pending: None,
            sink: Some(sink),
            dead_letter,
            actions,
            committer,
            in_flight: in_flight.map(|f| (f, 0, 0)),
            metrics: self.metrics,
            summary: RunSummary::default(),
            cut_on_time: true,
        })
    }

    /// Runs the stream job: joins the consumer group and processes until
    /// `shutdown` resolves, then drains, commits and leaves the group.
    pub async fn run_kafka(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunSummary, PipelineError> {
        let path = PathBuf::from("<pipeline>");
        let mut kcfg = self.cfg.kafka_or_err(&path)?.clone();
        let statuses = (
            self.cfg
                .actions
                .status_every()
                .ok()
                .flatten()
                .and_then(|d| d.to_std().ok()),
            self.cfg.actions.sla.spans(),
        );
        let queue = self.cfg.nlp.is_some() && !self.cfg.actions.flags.is_empty();
        // Follow-up events come in on their own topic, read by the same
        // consumer (and the same exactly-once commit).
        let response_topics: Vec<String> = self.cfg.responses.topic.iter().cloned().collect();
        kcfg.topics.extend(response_topics.iter().cloned());
        let dead_letter = match &self.cfg.rejected.dead_letter_topic {
            Some(t) => Some(DeadLetter::new(&client_config(&kcfg), t, &self.cfg.name)?),
            None => None,
        };
        let actions = match &self.cfg.actions.topic {
            Some(t) => Some(ActionTopic::new(
                &client_config(&kcfg),
                t,
                ActionRules::new(&self.cfg.actions.flags),
                &self.cfg.name,
            )?),
            None => None,
        };
        // Slots are allocated as used; the byte budget is what normally
        // pauses fetching, the count only guards against tiny messages.
        let capacity = (4 * self.cfg.batch.max_records).max(65_536);
        let (tx, mut rx) = mpsc::channel(capacity);
        // Half the channel: handing a message over never blocks the poller.
        let flow = Arc::new(InFlight::new(
            kcfg.max_in_flight_bytes,
            capacity as u64 / 2,
            self.metrics.clone(),
        ));
        let store = OutputStore::open(&self.cfg.output).map_err(SinkError::from)?;
        let (mut source, committer) = KafkaSource::start(
            &kcfg,
            store.clone(),
            tx,
            Arc::clone(&flow),
            self.metrics.clone(),
        )?;
        let status_store = store.clone();
        let pipeline = match self.build(
            store,
            Some(committer),
            Some(flow),
            dead_letter,
            actions,
            response_topics,
        ) {
            Ok(p) => p,
            Err(e) => {
                source.stop();
                let _ = tokio::task::spawn_blocking(move || source.close()).await;
                return Err(e);
            }
        };
        let stop = {
            let flag = source.stop_handle();
            move || flag.store(true, std::sync::atomic::Ordering::SeqCst)
        };
        // Action statuses (the overdue metric and action_status/), apart
        // from the event loop; they only read committed files.
        let status_task = match (statuses.0, statuses.1) {
            (Some(every), Ok(sla)) if queue => Some(crate::followup::spawn_status_task(
                status_store,
                crate::followup::status::Sla(sla),
                every,
                pipeline.metrics.clone(),
            )),
            _ => None,
        };
        let result = pipeline.run(&mut rx, shutdown, stop).await;
        if let Some(t) = status_task {
            t.abort();
        }
        // Leave the group on a blocking thread while answering the final
        // revocation here, until the consumer is gone and the channel closes.
        let closing = tokio::task::spawn_blocking(move || source.close());
        while let Some(ev) = rx.recv().await {
            if let SourceEvent::Revoke { done, .. } = ev {
                let _ = done.send(());
            }
        }
        if let Err(e) = closing.await {
            tracing::warn!(error = %e, "closing the consumer");
        }
        result
    }

    /// Runs a backfill of one file through the same stages. Resumes after
    /// the last range committed for this file; returns when the file is done.
    pub async fn run_file(
        self,
        path: PathBuf,
        format: FileFormat,
    ) -> Result<RunSummary, PipelineError> {
        let topic = file::topic_for(&path);
        let store = OutputStore::open(&self.cfg.output).map_err(SinkError::from)?;
        let start = crate::sink::recover_partition(&store, &topic, 0)?
            .next
            .unwrap_or(0);
        if start > 0 {
            tracing::info!(file = %path.display(), start, "resuming after the last committed record");
        }
        let response_topics = if self.responses_only {
            vec![topic.clone()]
        } else {
            Vec::new()
        };
        let mut pipeline = self.build(store, None, None, None, None, response_topics)?;
        pipeline.cut_on_time = false;
        let (tx, mut rx) = mpsc::channel(4096);
        let reader = tokio::task::spawn_blocking(move || file::read_file(&path, format, start, tx));
        let result = pipeline.run(&mut rx, std::future::pending(), || {}).await;
        drop(rx);
        match reader.await {
            Ok(Ok(_)) => result,
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(PipelineError::Join(e.to_string())),
        }
    }
}

impl Pipeline {
    /// The event loop. Returns after [`SourceEvent::Stopped`] (or the channel
    /// closing), with everything committed.
    pub async fn run(
        mut self,
        events: &mut mpsc::Receiver<SourceEvent>,
        shutdown: impl Future<Output = ()>,
        stop_source: impl Fn(),
    ) -> Result<RunSummary, PipelineError> {
        tokio::pin!(shutdown);
        let mut stopping = false;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.metrics.health.beat();
            let deadline = self.batcher.deadline().filter(|_| self.cut_on_time);
            tokio::select! {
                biased;
                _ = &mut shutdown, if !stopping => {
                    tracing::info!("shutdown requested: draining in-flight batches");
                    stopping = true;
                    stop_source();
                }
                ev = events.recv() => match ev {
                    None | Some(SourceEvent::Stopped) => break,
                    Some(SourceEvent::Message(m)) => {
                        self.summary.messages += 1;
                        if let Some((_, bytes, count)) = &mut self.in_flight {
                            *bytes += InFlight::weight(&m);
                            *count += 1;
                        }
                        let d = self.decoder.decode(m, Utc::now());
                        if let Some(batch) = self.batcher.push(d) {
                            self.process(batch).await?;
                            self.commit_due().await?;
                        }
                    }
                    Some(SourceEvent::Assigned(starts)) => {
                        self.drain().await?;
                        for ((t, p), next, epoch) in starts {
                            if let Some(sink) = &mut self.sink {
                                sink.set_epoch((t.clone(), p), epoch);
                            }
                            match next {
                                Some(n) => tracing::info!(topic = %t, partition = p, offset = n, "assigned; resuming after the committed files"),
                                None => tracing::info!(topic = %t, partition = p, "assigned; no files yet, starting from the group offset"),
                            }
                        }
                    }
                    Some(SourceEvent::Revoke { partitions, lost, done }) => {
                        let batch = self.batcher.take();
                        self.process(batch).await?;
                        self.drain().await?;
                        if lost {
                            tracing::warn!(?partitions, "assignment lost: discarding uncommitted files of these partitions");
                            let mut sink = self.take_sink();
                            for tp in &partitions {
                                sink.abort(tp);
                                if let Some(d) = &mut self.dead_letter {
                                    d.producer().forget(tp);
                                }
                                if let Some(a) = &mut self.actions {
                                    a.producer().forget(tp);
                                }
                            }
                            self.sink = Some(sink);
                        } else {
                            self.commit(partitions).await?;
                        }
                        let _ = done.send(());
                    }
                    Some(SourceEvent::Fatal(msg)) => {
                        self.metrics.health.set_stopped(msg.clone());
                        return Err(PipelineError::SourceFatal(msg));
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let batch = self.batcher.take();
                    self.process(batch).await?;
                    self.commit_due().await?;
                }
                _ = tick.tick() => self.commit_due().await?,
            }
        }
        let batch = self.batcher.take();
        self.process(batch).await?;
        self.drain().await?;
        let all = self
            .sink
            .as_ref()
            .map(ParquetSink::open_partitions)
            .unwrap_or_default();
        self.commit(all).await?;
        for op in self.operators.iter_mut().chain(self.after.iter_mut()) {
            op.on_stop()?;
        }
        if let Some(d) = &mut self.dead_letter {
            d.producer().flush(Duration::from_secs(10));
        }
        if let Some(a) = &mut self.actions {
            a.producer().flush(Duration::from_secs(10));
        }
        Ok(self.summary)
    }

    fn take_sink(&mut self) -> ParquetSink {
        // Only `None` while a blocking task holds it, which `process`/`commit` await.
        self.sink
            .take()
            .unwrap_or_else(|| unreachable!("sink is always returned by its blocking task"))
    }

    /// Runs the first stage (up to `embed`) over `batch` while the previous
    /// batch finishes its second stage, then starts this batch's second
    /// stage (the remaining operators and the sink write) and returns
    /// without waiting for it; [`Pipeline::drain`] collects it.
    async fn process(&mut self, mut batch: CommentBatch) -> Result<(), PipelineError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        // Every message received so far is in this batch.
        let flow = match &mut self.in_flight {
            Some((_, bytes, count)) => (std::mem::take(bytes), std::mem::take(count)),
            None => (0, 0),
        };
        let mut ops = std::mem::take(&mut self.operators);
        let metrics = self.metrics.clone();
        let first = tokio::task::spawn_blocking(move || {
            let res = run_operators(&mut ops, &mut batch, &metrics);
            (ops, batch, res)
        });
        // Meanwhile the previous batch is analysed and written.
        let previous = self.drain().await;
        let (ops, mut batch, res) = first
            .await
            .map_err(|e| PipelineError::Join(e.to_string()))?;
        self.operators = ops;
        previous?;
        res?;
        // Every operator and the sink are in hand: commit what is due
        // before this batch's rows go in.
        self.commit_due().await?;
        let mut ops = std::mem::take(&mut self.after);
        let mut sink = self.take_sink();
        let metrics = self.metrics.clone();
        let task = tokio::task::spawn_blocking(move || {
            let res = run_operators(&mut ops, &mut batch, &metrics)
                .map_err(PipelineError::from)
                .and_then(|()| {
                    let t = std::time::Instant::now();
                    let r = sink.write(&batch).map_err(PipelineError::from);
                    metrics.observe_stage("sink_write", t.elapsed().as_secs_f64());
                    r
                });
            Written {
                ops,
                sink,
                batch,
                res,
            }
        });
        self.pending = Some(Pending {
            task,
            flow,
            started,
        });
        Ok(())
    }

    /// Waits for the batch in the second stage, if any: its rows are then
    /// in the sink's open files; its rejected rows go to the dead-letter
    /// topic and its actions to the action topic.
    async fn drain(&mut self) -> Result<(), PipelineError> {
        let Some(Pending {
            task,
            flow,
            started,
        }) = self.pending.take()
        else {
            return Ok(());
        };
        let Written {
            ops,
            sink,
            batch,
            res,
        } = task.await.map_err(|e| PipelineError::Join(e.to_string()))?;
        self.after = ops;
        self.sink = Some(sink);
        res?;
        if let Some((budget, _, _)) = &self.in_flight {
            budget.release(flow.0, flow.1);
        }
        for r in &batch.rejected {
            self.metrics.reject(r.reason.code());
            tracing::debug!(topic = %r.coords.topic, partition = r.coords.partition, offset = r.coords.offset, reason = %r.reason, "rejected: {}", r.message);
            if let Some(d) = &mut self.dead_letter {
                d.send(r).await?;
                self.metrics.dead_letters.inc();
            }
        }
        if let Some(a) = &mut self.actions {
            for c in &batch.comments {
                if a.send(c).await? {
                    self.metrics.actions.inc();
                }
            }
        }
        self.metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Commits the partitions whose files are due; waits for nothing (a
    /// batch still in the second stage is left to finish).
    async fn commit_due(&mut self) -> Result<(), PipelineError> {
        if self.pending.as_ref().is_some_and(|p| !p.task.is_finished()) {
            return Ok(());
        }
        self.drain().await?;
        let due = self.sink.as_ref().map(ParquetSink::due).unwrap_or_default();
        self.commit(due).await
    }

    /// Confirms dead letters and actions, commits files, then commits Kafka
    /// offsets.
    async fn commit(&mut self, partitions: Vec<TopicPartition>) -> Result<(), PipelineError> {
        if partitions.is_empty() {
            return Ok(());
        }
        self.drain().await?;
        for tp in &partitions {
            if let Some(d) = &mut self.dead_letter {
                d.producer().confirm(tp).await?;
            }
            if let Some(a) = &mut self.actions {
                a.producer().confirm(tp).await?;
            }
        }
        for op in self.operators.iter_mut().chain(self.after.iter_mut()) {
            op.before_commit()?;
        }
        let mut sink = self.take_sink();
        let metrics = self.metrics.clone();
        let (sink, res) = tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            let mut done = Vec::new();
            let mut res = Ok(());
            for tp in &partitions {
                match sink.commit(tp) {
                    Ok(Some(r)) => done.push(r),
                    Ok(None) => {}
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
            }
            metrics.observe_stage("sink_commit", t.elapsed().as_secs_f64());
            (sink, res.map(|()| done))
        })
        .await
        .map_err(|e| PipelineError::Join(e.to_string()))?;
        self.sink = Some(sink);
        let ranges = res?;
        for r in &ranges {
            tracing::info!(
                topic = %r.topic, partition = r.partition, first = r.first, last = r.last,
                comments = r.comment_rows, rejected = r.rejected_rows, files = r.files.len(),
                "committed"
            );
            self.summary.add(r);
        }
        for op in self.operators.iter_mut().chain(self.after.iter_mut()) {
            op.on_commit()?;
        }
        if let Some(c) = self.committer.clone() {
            let metrics = self.metrics.clone();
            tokio::task::spawn_blocking(move || {
                let t = std::time::Instant::now();
                c.commit(&ranges);
                metrics.observe_stage("offset_commit", t.elapsed().as_secs_f64());
            })
            .await
            .map_err(|e| PipelineError::Join(e.to_string()))?;
        }
        Ok(())
    }
}

/// A batch in the second stage: its operators after `embed` and the sink
/// write, on a blocking thread.
struct Pending {
    task: tokio::task::JoinHandle<Written>,
    /// Bytes and messages of the in-flight budget this batch holds.
    flow: (u64, u64),
    started: std::time::Instant,
}

/// What the second stage hands back.
struct Written {
    ops: Vec<Box<dyn Operator>>,
    sink: ParquetSink,
    batch: CommentBatch,
    res: Result<(), PipelineError>,
}

/// Splits the operators after `embed` off `operators` (none if there is no
/// `embed`: then the second stage is the sink write alone).
fn split_after_embed(operators: &mut Vec<Box<dyn Operator>>) -> Vec<Box<dyn Operator>> {
    match operators.iter().position(|op| op.name() == "embed") {
        Some(i) => operators.split_off(i + 1),
        None => Vec::new(),
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::OPERATORS;
    use crate::batch::CommentBatch;
    use crate::nlp::{Operator, OperatorError};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    /// Batches the probe named `embed` has started.
    type Started = Arc<(Mutex<usize>, Condvar)>;

    /// Stands in for the embed stage: counts the batches it starts.
    struct EmbedProbe(Started);

    impl Operator for EmbedProbe {
        fn name(&self) -> &str {
            "embed"
        }
        fn process_batch(&mut self, _: &mut CommentBatch) -> Result<(), OperatorError> {
            let (count, cv) = &*self.0;
            *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            cv.notify_all();
            Ok(())
        }
    }

    /// Stands in for analysis: holds the first batch until the embed probe
    /// has started the second one, and records whether that happened.
    struct AfterProbe {
        started: Started,
        overlapped: Arc<AtomicBool>,
        first_ids: Arc<Mutex<Vec<String>>>,
    }

    impl Operator for AfterProbe {
        fn name(&self) -> &str {
            "after"
        }
        fn process_batch(&mut self, batch: &mut CommentBatch) -> Result<(), OperatorError> {
            let mut ids = self.first_ids.lock().unwrap_or_else(|e| e.into_inner());
            ids.push(batch.comments[0].id.clone());
            if ids.len() == 1 {
                let (count, cv) = &*self.started;
                let guard = count.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, _) = cv
                    .wait_timeout_while(guard, Duration::from_secs(30), |n| *n < 2)
                    .unwrap_or_else(|e| e.into_inner());
                self.overlapped.store(*guard >= 2, Ordering::SeqCst);
            }
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn next_batch_is_embedded_while_the_previous_one_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("feedback.jsonl");
        let lines: Vec<String> = (0..30)
            .map(|i| format!(r#"{{"id":"c{i:02}","text":"comment number {i}"}}"#))
            .collect();
        std::fs::write(&input, lines.join("\n")).unwrap();
        let mut cfg = crate::config::PipelineConfig::from_toml(
            "[batch]\nmax_records = 10\n",
            std::path::Path::new("test.toml"),
        )
        .unwrap();
        cfg.output.root = dir.path().join("out");
        let started: Started = Arc::default();
        let overlapped = Arc::new(AtomicBool::new(false));
        let first_ids = Arc::new(Mutex::new(Vec::new()));
        let summary = super::PipelineBuilder::new(cfg)
            .operator(Box::new(EmbedProbe(started.clone())))
            .operator(Box::new(AfterProbe {
                started,
                overlapped: overlapped.clone(),
                first_ids: first_ids.clone(),
            }))
            .run_file(input, crate::source::file::FileFormat::Jsonl)
            .await
            .unwrap();
        assert!(
            overlapped.load(Ordering::SeqCst),
            "the second batch was not embedded while the first was in analysis"
        );
        // Analysed (and so written) in order, every row once.
        assert_eq!(*first_ids.lock().unwrap(), ["c00", "c10", "c20"]);
        assert_eq!(summary.comments, 30);
        let rows = crate::sink::read::read_comments(&dir.path().join("out"), None, None).unwrap();
        let mut ids: Vec<_> = rows.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 30);
    }

    /// The part of `text` from `heading` to the next blank line: a table.
    fn table<'a>(text: &'a str, heading: &str) -> &'a str {
        let start = text
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading:?}"));
        let rest = &text[start..];
        let end = ["\n\n", "\n//!\n"]
            .iter()
            .filter_map(|s| rest.find(s))
            .min()
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// Where each of `names` first appears in `text`; panics on a missing one.
    fn positions(text: &str, names: impl Iterator<Item = String>) -> Vec<usize> {
        names
            .map(|n| {
                text.find(&n)
                    .unwrap_or_else(|| panic!("{n} is not in the stage table:\n{text}"))
            })
            .collect()
    }

    #[test]
    fn operators_split_after_embed() {
        let started: Started = Arc::default();
        let mut ops: Vec<Box<dyn Operator>> = vec![
            Box::new(EmbedProbe(started.clone())),
            Box::new(AfterProbe {
                started,
                overlapped: Arc::default(),
                first_ids: Arc::default(),
            }),
        ];
        let after = super::split_after_embed(&mut ops);
        assert_eq!(ops.iter().map(|o| o.name()).collect::<Vec<_>>(), ["embed"]);
        assert_eq!(
            after.iter().map(|o| o.name()).collect::<Vec<_>>(),
            ["after"]
        );
        // Without an embed stage the second stage is the sink write alone.
        let after = super::split_after_embed(&mut ops.split_off(1));
        assert!(after.is_empty());
    }

    #[test]
    fn readme_stage_table_lists_every_operator_in_order() {
        let readme = include_str!("../README.md");
        let t = table(readme, "| stage | file | what happens |");
        let pos = positions(t, OPERATORS.iter().map(|(_, _, file)| format!("`{file}`")));
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "out of order: {pos:?}");
    }

    #[test]
    fn crate_docs_stage_table_lists_every_operator_in_order() {
        let lib = include_str!("lib.rs");
        let t = table(lib, "//! | stage | module | what happens |");
        let pos = positions(t, OPERATORS.iter().map(|(_, m, _)| format!("[`{m}`]")));
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "out of order: {pos:?}");
    }

    #[test]
    fn every_listed_file_exists_and_names_its_operator() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, _, file) in OPERATORS {
            let src = std::fs::read_to_string(root.join(file)).unwrap();
            assert!(
                src.contains(&format!("fn name(&self) -> &str {{\n        \"{name}\"")),
                "{file} does not hold the operator {name:?}"
            );
        }
    }
}
