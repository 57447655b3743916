//! librdkafka's in-process mock cluster: real Kafka protocol on loopback
//! ports, no broker process. Used by `verbatim demo`, the integration tests
//! and the benches.
//!
//! rdkafka's `MockCluster` does not expose the group initial-rebalance delay
//! (3 s by default, which makes every group join slow), so this wraps the
//! C API directly.

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka_sys as rdsys;

/// Errors from the mock cluster.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The client that hosts the mock could not be created.
    #[error("creating the mock cluster's client: {0}")]
    Client(#[from] KafkaError),
    /// librdkafka refused to create the cluster.
    #[error("librdkafka could not create a mock cluster")]
    Create,
    /// A topic could not be created.
    #[error("creating mock topic {topic}: {code:?}")]
    Topic {
        /// Topic name.
        topic: String,
        /// librdkafka's error code.
        code: RDKafkaErrorCode,
    },
    /// A topic name contained a NUL byte.
    #[error("topic name contains a NUL byte")]
    BadName,
}

/// A running mock cluster. Dropping it shuts the brokers down.
pub struct MockKafka {
    cluster: *mut rdsys::rd_kafka_mock_cluster_t,
    bootstrap: String,
    // Hosts the cluster; must outlive it (dropped after `Drop::drop`).
    _host: BaseProducer,
}

// SAFETY: librdkafka's mock cluster API is thread-safe: calls are forwarded
// to the cluster's own thread and the handle is never freed before drop.
unsafe impl Send for MockKafka {}
// SAFETY: as above; every method takes `&self` and only calls thread-safe C functions.
unsafe impl Sync for MockKafka {}

impl MockKafka {
    /// Starts a cluster of `brokers` brokers with the group initial-rebalance
    /// delay set to 0, so consumers join at once.
    pub fn start(brokers: i32) -> Result<Self, MockError> {
        let host: BaseProducer = ClientConfig::new().create()?;
        // SAFETY: `host` is a valid client handle that outlives the cluster.
        let cluster =
            unsafe { rdsys::rd_kafka_mock_cluster_new(host.client().native_ptr(), brokers) };
        if cluster.is_null() {
            return Err(MockError::Create);
        }
        // SAFETY: `cluster` is non-null and owned by us; the returned string is
        // valid while the cluster lives, and we copy it immediately.
        let bootstrap = unsafe {
            let p = rdsys::rd_kafka_mock_cluster_bootstraps(cluster);
            CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        // SAFETY: valid cluster handle.
        unsafe { rdsys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0) };
        Ok(Self {
            cluster,
            bootstrap,
            _host: host,
        })
    }

    /// `bootstrap.servers` for clients of this cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), MockError> {
        let name = CString::new(topic).map_err(|_| MockError::BadName)?;
        // SAFETY: valid cluster handle and NUL-terminated name.
        let err = unsafe {
            rdsys::rd_kafka_mock_topic_create(self.cluster, name.as_ptr(), partitions, 1)
        };
        let code: RDKafkaErrorCode = err.into();
        match code {
            RDKafkaErrorCode::NoError => Ok(()),
            code => Err(MockError::Topic {
                topic: topic.to_string(),
                code,
            }),
        }
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        // SAFETY: created in `start`, destroyed exactly once, before its host client.
        unsafe { rdsys::rd_kafka_mock_cluster_destroy(self.cluster) };
    }
}

/// One message to produce: partition, optional key, value.
pub type Produce = (i32, Option<Vec<u8>>, Vec<u8>);

/// Produces messages to `topic` and waits for every delivery. Returns the
/// `(partition, offset)` of each, in input order.
pub async fn produce_all(
    bootstrap: &str,
    topic: &str,
    messages: impl IntoIterator<Item = Produce>,
) -> Result<Vec<(i32, i64)>, KafkaError> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    let mut futs = Vec::new();
    for (partition, key, value) in messages {
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).partition(partition).payload(&value);
        if let Some(k) = &key {
            rec = rec.key(k);
        }
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    futs.push(f);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
    let mut out = Vec::with_capacity(futs.len());
    for f in futs {
        match f.await {
            Ok(Ok(d)) => out.push((d.partition, d.offset)),
            Ok(Err((e, _))) => return Err(e),
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(out)
}
