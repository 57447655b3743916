//! `[kafka]`: the consumer group the job joins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// `[kafka]`: the consumer group the job joins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`host:port,host:port`).
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group id; every instance of one job uses the same one.
    pub group_id: String,
    /// Where a partition with no progress starts: `earliest` or `latest`.
    #[serde(default = "default_offset_reset")]
    pub auto_offset_reset: String,
    /// librdkafka properties passed through unchanged (SASL, SSL, timeouts...).
    /// `enable.auto.commit` and `enable.auto.offset.store` are owned by verbatim.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Static group membership (`group.instance.id`): a member restarted
    /// under the same id takes its partitions back at once instead of
    /// waiting for its old session to time out. `"hostname"` uses the
    /// machine's host name (a Kubernetes pod name); unset: dynamic membership.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// What to do when a partition's progress in the files lies outside its
    /// log (the topic was recreated, or retention deleted unread messages).
    #[serde(default)]
    pub on_offset_reset: OffsetReset,
    /// Seconds without any reachable broker after which `/readyz` fails.
    #[serde(default = "default_unreachable_after_secs")]
    pub unreachable_after_secs: u64,
    /// Seconds without any reachable broker after which the job stops with
    /// an error (exit status 1); unset: it waits for the brokers forever.
    #[serde(default)]
    pub give_up_after_secs: Option<u64>,
    /// Bytes of messages read but not yet written to a file past which
    /// fetching pauses (librdkafka pause per partition; polling goes on, so
    /// the group membership holds) until half of it is written. librdkafka's
    /// own prefetch queue (`queued.max.messages.kbytes`) is set to half of
    /// it unless `[kafka.properties]` sets it.
    #[serde(default = "default_max_in_flight_bytes")]
    pub max_in_flight_bytes: u64,
}

impl KafkaConfig {
    /// The `group.instance.id` to use, with `"hostname"` resolved; an error
    /// message when the host name cannot be read.
    pub fn resolved_instance_id(&self) -> Result<Option<String>, String> {
        match self.instance_id.as_deref() {
            None => Ok(None),
            Some("hostname") => std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.trim().is_empty())
                .or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .ok()
                        .map(|h| h.trim().to_string())
                        .filter(|h| !h.is_empty())
                })
                .map(Some)
                .ok_or_else(|| "kafka.instance_id = \"hostname\" but the host name cannot be read (no HOSTNAME, no /proc/sys/kernel/hostname). Fix: set kafka.instance_id to a name unique in the group".to_string()),
            Some(id) => Ok(Some(id.to_string())),
        }
    }
}

/// `kafka.on_offset_reset`: the policy for progress outside the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// Stop the job with an error naming the fix (the default: an operator decides).
    #[default]
    Fail,
    /// Read the partition's log from its start.
    Earliest,
    /// Read only messages produced from now on.
    Latest,
}

impl OffsetReset {
    /// The value as written in the pipeline.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Fail => "fail",
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

fn default_unreachable_after_secs() -> u64 {
    60
}

fn default_max_in_flight_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_offset_reset() -> String {
    "earliest".to_string()
}

/// librdkafka properties that verbatim sets itself; a pipeline may not override them.
pub const OWNED_KAFKA_PROPERTIES: [&str; 4] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "group.id",
    "bootstrap.servers",
];

impl KafkaConfig {
    /// A section with these brokers, topics and group, every other key at its default.
    pub fn new(
        brokers: impl Into<String>,
        topics: Vec<String>,
        group_id: impl Into<String>,
    ) -> Self {
        Self {
            brokers: brokers.into(),
            topics,
            group_id: group_id.into(),
            auto_offset_reset: default_offset_reset(),
            properties: BTreeMap::new(),
            instance_id: None,
            on_offset_reset: OffsetReset::default(),
            unreachable_after_secs: default_unreachable_after_secs(),
            give_up_after_secs: None,
            max_in_flight_bytes: default_max_in_flight_bytes(),
        }
    }

    /// Checks every `[kafka]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(bad.err(
                "kafka.brokers",
                "is empty".into(),
                "set it to host:port[,host:port], e.g. brokers = \"localhost:9092\"",
            ));
        }
        if self.max_in_flight_bytes < 4 * 1024 * 1024 {
            return Err(bad.err(
                "kafka.max_in_flight_bytes",
                format!("is {}", self.max_in_flight_bytes),
                "use at least 4194304 (4 MiB): below a few fetches' worth (max.partition.fetch.bytes is 1 MiB) fetching stops and starts all the time; the default 67108864 (64 MiB) suits most jobs",
            ));
        }
        if self.topics.is_empty() {
            return Err(bad.err(
                "kafka.topics",
                "is empty".into(),
                "list at least one topic, e.g. topics = [\"feedback\"]",
            ));
        }
        for t in &self.topics {
            if t.is_empty()
                || t.len() > 249
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(bad.err(
                    "kafka.topics",
                    format!("contains {t:?}, which is not a legal Kafka topic name"),
                    "use 1-249 characters from [a-zA-Z0-9._-]",
                ));
            }
        }
        if self.group_id.trim().is_empty() {
            return Err(bad.err(
                "kafka.group_id",
                "is empty".into(),
                "set a consumer group id shared by every instance of this job",
            ));
        }
        if !matches!(self.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(bad.err(
                "kafka.auto_offset_reset",
                format!("is {:?}", self.auto_offset_reset),
                "use \"earliest\" or \"latest\"",
            ));
        }
        if self.unreachable_after_secs == 0 {
            return Err(bad.err(
                "kafka.unreachable_after_secs",
                "is 0".into(),
                "use a whole number of seconds of at least 1 (default 60)",
            ));
        }
        if self.give_up_after_secs == Some(0) {
            return Err(bad.err(
                "kafka.give_up_after_secs",
                "is 0".into(),
                "use a whole number of seconds of at least 1, or remove it to wait for the brokers forever",
            ));
        }
        if let Some(id) = &self.instance_id {
            if id.trim().is_empty() {
                return Err(bad.err(
                    "kafka.instance_id",
                    "is empty".into(),
                    "use \"hostname\" (one instance per host or pod), a name unique in the group, or remove it",
                ));
            }
            if self.properties.contains_key("group.instance.id") {
                return Err(bad.err(
                    "kafka.instance_id",
                    "is set together with kafka.properties.\"group.instance.id\"".into(),
                    "keep one of them",
                ));
            }
        }
        for key in self.properties.keys() {
            if OWNED_KAFKA_PROPERTIES.contains(&key.as_str()) {
                return Err(bad.err(&format!("kafka.properties.\"{key}\""), "is set by verbatim itself".into(), "remove it (use kafka.brokers / kafka.group_id; offsets are committed only after Parquet is durable)"));
            }
        }
        Ok(())
    }
}
