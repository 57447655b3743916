//! Exactly-once from Kafka to Parquet, against librdkafka's in-process mock
//! cluster (real Kafka protocol, 3 partitions).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use verbatim::metrics::Metrics;
use verbatim::pipeline::PipelineBuilder;
use verbatim::source::kafka_mock::MockKafka;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_lands_exactly_once() {
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    let sent = messages(3000, 3, "a");
    let offsets = produce(mock.bootstrap_servers(), "fb", &sent).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(mock.bootstrap_servers(), "fb", "g1", dir.path());
    let s = run_until(cfg, sent.len() as u64).await;
    assert_eq!(s.messages, 3000);
    let rejected = sent.iter().filter(|m| m.reject.is_some()).count() as u64;
    assert_eq!(s.rejected, rejected);
    assert_eq!(s.comments, 3000 - rejected);
    assert!(
        s.ranges > 3,
        "small files should have rolled several times, got {} ranges",
        s.ranges
    );
    assert_exact(dir.path(), &sent, &offsets);
    // Kafka commits follow the files: the group ends at the end of each partition.
    let committed = group_offsets(mock.bootstrap_servers(), "g1", "fb", 3);
    for (p, end) in ends(&sent, &offsets) {
        assert_eq!(committed.get(&p), Some(&end), "partition {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_committed_progress() {
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = messages(900, 3, "r1");
    let mut offsets = produce(mock.bootstrap_servers(), "fb", &first).await;
    let s1 = run_until(
        config(mock.bootstrap_servers(), "fb", "g2", dir.path()),
        900,
    )
    .await;
    assert_eq!(s1.messages, 900);

    let second = messages(600, 3, "r2");
    offsets.extend(produce(mock.bootstrap_servers(), "fb", &second).await);
    // The second run reads only what is new.
    let s2 = run_until(
        config(mock.bootstrap_servers(), "fb", "g2", dir.path()),
        600,
    )
    .await;
    assert_eq!(s2.messages, 600, "a restart re-read committed messages");
    let all: Vec<_> = first.into_iter().chain(second).collect();
    assert_exact(dir.path(), &all, &offsets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_beat_a_stale_group_offset() {
    // Files exist but the group never committed (as after a crash between
    // rename and commit, or a commit refused in a rebalance): a new member of
    // the group must resume after the files, not from the group offset.
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sent = messages(600, 3, "s");
    let offsets = produce(mock.bootstrap_servers(), "fb", &sent).await;
    run_until(
        config(mock.bootstrap_servers(), "fb", "g-old", dir.path()),
        600,
    )
    .await;
    // Same output, a group with no committed offsets at all.
    let s = {
        let metrics = Metrics::new();
        let seen = metrics.messages.clone();
        let shutdown = async move {
            // Give it time to (wrongly) re-read; nothing should arrive.
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(seen.get(), 0);
        };
        let cfg = config(mock.bootstrap_servers(), "fb", "g-new", dir.path());
        PipelineBuilder::new(cfg)
            .metrics(metrics)
            .run_kafka(shutdown)
            .await
            .unwrap()
    };
    assert_eq!(s.messages, 0);
    assert_exact(dir.path(), &sent, &offsets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_partitions_and_the_union_is_exact() {
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sent = messages(3000, 3, "two");
    let (first, second) = sent.split_at(1500);
    let mut offsets = produce(mock.bootstrap_servers(), "fb", first).await;

    let (ma, mb) = (Metrics::new(), Metrics::new());
    let total = {
        let (a, b) = (ma.messages.clone(), mb.messages.clone());
        Arc::new(move || a.get() + b.get())
    };
    let done = {
        let total = total.clone();
        move || {
            let total = total.clone();
            async move { wait_for(LIMIT, "both consumers to finish", || total() >= 3000).await }
        }
    };
    let cfg = config(mock.bootstrap_servers(), "fb", "g3", dir.path());
    let a = tokio::spawn(
        PipelineBuilder::new(cfg.clone())
            .metrics(ma.clone())
            .run_kafka(done()),
    );
    // Let A take all partitions and start, then B joins and takes some away.
    wait_for(LIMIT, "A to start", || ma.messages.get() > 0).await;
    let b = tokio::spawn(
        PipelineBuilder::new(cfg)
            .metrics(mb.clone())
            .run_kafka(done()),
    );
    wait_for(LIMIT, "B to be assigned partitions", || {
        mb.assigned_partitions.get() > 0
    })
    .await;
    // The rest arrives while both are members: each must read its share.
    offsets.extend(produce(mock.bootstrap_servers(), "fb", second).await);
    let (sa, sb) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(sb.messages > 0, "the second consumer got no partition");
    assert!(sa.messages > 0);
    assert_exact(dir.path(), &sent, &offsets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messages_reach_the_dead_letter_topic_with_reasons() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    mock.create_topic("fb-dlq", 1).unwrap();
    let sent = messages(700, 3, "dlq");
    let offsets = produce(mock.bootstrap_servers(), "fb", &sent).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(mock.bootstrap_servers(), "fb", "g-dlq", dir.path());
    cfg.rejected.dead_letter_topic = Some("fb-dlq".into());
    let s = run_until(cfg, 700).await;
    assert_exact(dir.path(), &sent, &offsets);

    let mut want: Vec<(Vec<u8>, String)> = sent
        .iter()
        .filter_map(|m| m.reject.map(|r| (m.value.clone(), r.to_string())))
        .collect();
    assert_eq!(s.rejected as usize, want.len());
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "dlq-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("fb-dlq", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    drop(tpl);
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    while got.len() < want.len() && start.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let reason = m
                .headers()
                .and_then(|h| h.iter().find(|x| x.key == "verbatim.reason"))
                .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                .expect("verbatim.reason header");
            got.push((m.payload().unwrap_or_default().to_vec(), reason));
        }
    }
    want.sort();
    got.sort();
    assert_eq!(
        got, want,
        "dead letters are the raw values with their reasons"
    );
}

/// Follow-up events on their own topic, read by the same job: each lands
/// once in `responses/` (or `rejected/` with its reason) across a restart,
/// beside the comments, and the group's offsets follow both topics' files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_events_land_exactly_once_beside_the_comments() {
    let mock = MockKafka::start(1).unwrap();
    mock.create_topic("fb", 3).unwrap();
    mock.create_topic("fb-resp", 2).unwrap();
    let sent = messages(600, 3, "c");
    let events = response_messages(400, 2, "c");
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        let mut c = config(mock.bootstrap_servers(), "fb", "g-resp", dir.path());
        c.responses.topic = Some("fb-resp".into());
        c
    };
    let mut offsets = produce(mock.bootstrap_servers(), "fb", &sent[..300]).await;
    let mut ev_offsets = produce(mock.bootstrap_servers(), "fb-resp", &events[..200]).await;
    let first = run_until(cfg(), 500).await;
    assert_eq!(first.messages, 500);
    offsets.extend(produce(mock.bootstrap_servers(), "fb", &sent[300..]).await);
    ev_offsets.extend(produce(mock.bootstrap_servers(), "fb-resp", &events[200..]).await);
    let second = run_until(cfg(), 500).await;
    assert_eq!(
        second.messages, 500,
        "the restart re-read or skipped messages"
    );
    let bad = events.iter().filter(|e| e.reject.is_some()).count() as u64;
    assert!(bad >= 40, "every bad class is in the sample: {bad}");
    assert_eq!(first.responses + second.responses, 400 - bad);
    assert_exact_in(dir.path(), Some("fb"), ("comments", "id"), &sent, &offsets);
    assert_exact_in(
        dir.path(),
        Some("fb-resp"),
        ("responses", "response_id"),
        &events,
        &ev_offsets,
    );
    let committed = group_offsets(mock.bootstrap_servers(), "g-resp", "fb-resp", 2);
    for (p, end) in ends(&events, &ev_offsets) {
        assert_eq!(committed.get(&p), Some(&end), "fb-resp partition {p}");
    }
}
