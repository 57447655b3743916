//! The action queue: comments that need a person (a safety risk, a request
//! to be contacted, a repeat issue, a reported score request) become one row
//! each in `actions/` (same offset range as their comment) and, when
//! `actions.topic` is set, one JSON record on that Kafka topic for a CRM.
//!
//! Records are keyed by the comment id and produced idempotently; like dead
//! letters, their delivery is confirmed before the files of their source
//! partition are committed, and the input offset only after that. A job that
//! stops or restarts cleanly therefore sends each action exactly once; a job
//! killed between delivery and its file commit re-reads that range and sends
//! those actions again with the same key, which a compacted topic (or a
//! consumer keyed on `comment_id`) collapses.

use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureRecord;

use super::producer::{ProduceError, TrackedProducer};
use crate::comment::Comment;
use crate::comment::Evidence;

/// Which flags put a comment in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRules {
    flags: Vec<String>,
}

/// One comment's place in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Action<'a> {
    /// 1 (urgent) to 4 (low); see [`ActionRules::action`].
    pub priority: u8,
    /// The queue's flags that the comment raised, in the rules' order.
    pub flags: Vec<&'a str>,
    /// The evidence of those flags.
    pub evidence: Vec<&'a Evidence>,
}

impl Action<'_> {
    /// `urgent`, `high`, `normal` or `low`.
    pub fn priority_label(&self) -> &'static str {
        match self.priority {
            1 => "urgent",
            2 => "high",
            3 => "normal",
            _ => "low",
        }
    }
}

impl ActionRules {
    /// Rules queueing comments that raise any of `flags`.
    pub fn new(flags: &[String]) -> Self {
        Self {
            flags: flags.to_vec(),
        }
    }

    /// The comment's action, if it raised a queued flag. Priority: 1 urgent
    /// (`safety_risk`), 2 high (`contact_requested` and `repeat_issue`
    /// together: asked again), 3 normal (either of them), 4 low (any other
    /// queued flag, e.g. `score_solicited`).
    pub fn action<'a>(&self, c: &'a Comment) -> Option<Action<'a>> {
        let raised = c.nlp.flags.as_ref()?;
        let mut flags: Vec<&'a str> = Vec::new();
        let mut evidence = Vec::new();
        for name in &self.flags {
            let hits: Vec<&'a Evidence> = raised.iter().filter(|e| &e.flag == name).collect();
            if let Some(first) = hits.first() {
                flags.push(first.flag.as_str());
                evidence.extend(hits);
            }
        }
        if flags.is_empty() {
            return None;
        }
        let has = |f: &str| flags.contains(&f);
        let priority = if has("safety_risk") {
            1
        } else if has("contact_requested") && has("repeat_issue") {
            2
        } else if has("contact_requested") || has("repeat_issue") {
            3
        } else {
            4
        };
        Some(Action {
            priority,
            flags,
            evidence,
        })
    }
}

/// The JSON record of an action, as the topic carries it.
pub fn action_json(c: &Comment, a: &Action<'_>, pipeline: &str) -> serde_json::Value {
    serde_json::json!({
        "comment_id": c.id,
        "priority": a.priority,
        "priority_label": a.priority_label(),
        "flags": a.flags,
        "evidence": a.evidence.iter().map(|e| serde_json::json!({
            "flag": e.flag, "start": e.start, "end": e.end, "text": e.text,
        })).collect::<Vec<_>>(),
        "staff_id": c.staff_id,
        "location": c.location,
        "channel": c.channel,
        "product": c.product,
        "customer_id": c.customer_id,
        "repeat_of": c.nlp.repeat_of,
        "event_time": c.event_time.to_rfc3339(),
        "text": c.text,
        "sentiment": c.nlp.sentiment.as_ref().map(|s| s.label.as_str()),
        "source": {"topic": c.coords.topic, "partition": c.coords.partition, "offset": c.coords.offset},
        "pipeline": pipeline,
    })
}

/// Produces actions to `actions.topic`.
pub struct ActionTopic {
    out: TrackedProducer,
    rules: ActionRules,
    pipeline: String,
}

impl ActionTopic {
    /// A producer for `topic` with the consumer's connection settings.
    pub fn new(
        props: &ClientConfig,
        topic: &str,
        rules: ActionRules,
        pipeline: &str,
    ) -> Result<Self, ProduceError> {
        Ok(Self {
            out: TrackedProducer::new(props, topic)?,
            rules,
            pipeline: pipeline.to_string(),
        })
    }

    /// Queues the comment's action, if it has one; returns whether it did.
    pub async fn send(&mut self, c: &Comment) -> Result<bool, ProduceError> {
        let Some(a) = self.rules.action(c) else {
            return Ok(false);
        };
        let payload = action_json(c, &a, &self.pipeline).to_string();
        let topic = self.out.topic().to_string();
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
            .key(c.id.as_bytes())
            .payload(payload.as_bytes());
        let tp = (c.coords.topic.clone(), c.coords.partition);
        self.out.send(&tp, c.coords.offset, record).await?;
        Ok(true)
    }

    /// The producer: the pipeline confirms, forgets and flushes through it.
    pub fn producer(&mut self) -> &mut TrackedProducer {
        &mut self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comment::SourceCoords;
    use chrono::Utc;

    fn comment(flags: &[&str]) -> Comment {
        let coords = SourceCoords {
            topic: "fb".into(),
            partition: 0,
            offset: 7,
            kafka_timestamp: None,
        };
        let mut c = Comment::new(coords, "c7".into(), "t".into(), Utc::now(), Utc::now());
        c.nlp.flags = Some(
            flags
                .iter()
                .map(|f| Evidence {
                    flag: f.to_string(),
                    start: 0,
                    end: 1,
                    text: "t".into(),
                })
                .collect(),
        );
        c
    }

    fn rules() -> ActionRules {
        ActionRules::new(&crate::config::DEFAULT_ACTION_FLAGS.map(String::from))
    }

    #[test]
    fn priorities_follow_the_flags() {
        let r = rules();
        let p = |f: &[&str]| r.action(&comment(f)).map(|a| a.priority);
        assert_eq!(p(&["safety_risk", "contact_requested"]), Some(1));
        assert_eq!(p(&["contact_requested", "repeat_issue"]), Some(2));
        assert_eq!(p(&["repeat_issue"]), Some(3));
        assert_eq!(p(&["score_solicited"]), Some(4));
        assert_eq!(p(&["survey_fatigue"]), None);
        assert_eq!(p(&[]), None);
        let mut unflagged = comment(&[]);
        unflagged.nlp.flags = None;
        assert!(r.action(&unflagged).is_none());
    }

    #[test]
    fn json_carries_key_fields_and_every_evidence() {
        let mut c = comment(&["contact_requested", "contact_requested", "survey_fatigue"]);
        c.staff_id = Some("s1".into());
        let a = rules().action(&c).unwrap();
        assert_eq!(a.flags, vec!["contact_requested"]);
        let v = action_json(&c, &a, "p");
        assert_eq!(v["comment_id"], "c7");
        assert_eq!(v["staff_id"], "s1");
        assert_eq!(v["priority_label"], "normal");
        assert_eq!(v["evidence"].as_array().unwrap().len(), 2);
        assert_eq!(v["source"]["offset"], 7);
    }
}
