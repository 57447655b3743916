//! `[batch]`: how comments are grouped before the NLP stages and the sink.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// `[batch]`: how comments are grouped before the NLP stages and the sink.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// A batch is processed once it holds this many messages...
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// ...or once its first message has waited this long.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
}

fn default_max_records() -> usize {
    256
}
fn default_max_wait_ms() -> u64 {
    500
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: default_max_records(),
            max_wait_ms: default_max_wait_ms(),
        }
    }
}

impl BatchConfig {
    /// Checks every `[batch]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        if !(1..=100_000).contains(&self.max_records) {
            return Err(bad.err(
                "batch.max_records",
                format!("is {}", self.max_records),
                "use a value from 1 to 100000, e.g. 256",
            ));
        }
        if self.max_wait_ms == 0 || self.max_wait_ms > 600_000 {
            return Err(bad.err(
                "batch.max_wait_ms",
                format!("is {}", self.max_wait_ms),
                "use a value from 1 to 600000 milliseconds, e.g. 500",
            ));
        }
        Ok(())
    }
}
