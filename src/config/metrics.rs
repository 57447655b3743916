//! `[metrics]`: the Prometheus endpoint.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Invalid};

/// `[metrics]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve Prometheus text format on `http://<listen>/metrics`, e.g. `127.0.0.1:9898`.
    #[serde(default)]
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// Checks every `[metrics]` value.
    pub(crate) fn validate(&self, bad: &Invalid<'_>) -> Result<(), ConfigError> {
        if let Some(l) = &self.listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad.err(
                    "metrics.listen",
                    format!("is {l:?}, not an address"),
                    "use ip:port, e.g. \"127.0.0.1:9898\"",
                ));
            }
        }
        Ok(())
    }
}
