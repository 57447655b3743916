//! `verbatim check`: validate a pipeline file, and with `--connect` contact
//! what it names (brokers, topics, models).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::load;
use crate::config::PipelineConfig;

/// Validate a pipeline file and print the resolved settings (secrets masked).
/// With --connect, also reach the brokers, confirm the topics and their
/// partition counts, let librdkafka validate [kafka.properties], and load the
/// models; every problem is named with the file, the key and the fix.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Contact the brokers and load the models, as `run` would at start.
    #[arg(long)]
    pub connect: bool,
    /// Seconds to wait for the brokers with --connect.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
}

/// Validates the file and prints the resolved settings.
pub fn execute(args: CheckArgs) -> anyhow::Result<()> {
    let pipeline = args.pipeline;
    let cfg = load(&pipeline)?;
    println!("# {} is valid. Resolved settings:\n", pipeline.display());
    print!("{}", cfg.to_display_toml());
    println!("\n# pipeline_version = {:?}", cfg.version_tag());
    if !args.connect {
        return Ok(());
    }
    println!("\n# --connect");
    let problems = connect(&cfg, Duration::from_secs(args.timeout_secs.max(1)));
    if problems.is_empty() {
        println!("# everything the pipeline names was reached");
        return Ok(());
    }
    for (key, problem, fix) in &problems {
        eprintln!("{}: `{key}` {problem}. Fix: {fix}", pipeline.display());
    }
    anyhow::bail!(
        "{}: {} problem(s) found by --connect",
        pipeline.display(),
        problems.len()
    )
}

/// Contacts the brokers and loads the models; prints what was reached and
/// returns each problem as (key, problem, fix).
fn connect(cfg: &PipelineConfig, timeout: Duration) -> Vec<(String, String, String)> {
    let mut problems = Vec::new();
    match &cfg.kafka {
        None => println!("ok   kafka: no [kafka] section (ingest only)"),
        Some(k) => {
            let t = Instant::now();
            match crate::source::kafka::probe(k, timeout) {
                Err(p) => problems.push((p.key, p.problem, p.fix)),
                Ok(r) => {
                    println!(
                        "ok   kafka.brokers: {} broker(s) answered in {} ms: {}",
                        r.brokers.len(),
                        t.elapsed().as_millis(),
                        r.brokers
                            .iter()
                            .map(|(id, a)| format!("{id}={a}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    for (topic, partitions) in &r.topics {
                        match partitions {
                            Some(n) => println!(
                                "ok   kafka.topics: {topic} has {n} partition(s): at most {n} instance(s) of this job share the work"
                            ),
                            None => problems.push((
                                "kafka.topics".to_string(),
                                format!("names {topic:?}, which does not exist on the cluster{}", closest(topic, &r.existing)),
                                "fix the name, or create the topic (with as many partitions as instances you plan to run)".to_string(),
                            )),
                        }
                    }
                }
            }
        }
    }
    if let Some(url) = cfg.output.bucket_url() {
        let t = Instant::now();
        match crate::sink::store::OutputStore::open(&cfg.output) {
            Ok(_) => println!(
                "ok   output.root: {url} answered a listing in {} ms",
                t.elapsed().as_millis()
            ),
            Err(e) => {
                let text = e.to_string();
                let (problem, fix) = text
                    .split_once(" Fix: ")
                    .map_or((text.as_str(), ""), |(p, f)| (p.trim_end_matches('.'), f));
                problems.push((
                    "output.root".to_string(),
                    problem.to_string(),
                    fix.to_string(),
                ));
            }
        }
    }
    match &cfg.nlp {
        None => println!("ok   nlp: no [nlp] section (the spine alone)"),
        Some(n) => {
            let t = Instant::now();
            match crate::nlp::operators_for(n, &cfg.flags, &cfg.targets) {
                Ok(stages) => println!(
                    "ok   nlp: {} loaded in {} ms ({} dims; reads {}; stages {})",
                    n.model,
                    t.elapsed().as_millis(),
                    stages.dim,
                    stages.model_languages.join(", "),
                    stages
                        .operators
                        .iter()
                        .map(|o| o.name().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Err(e) => problems.push((
                    "nlp.model".to_string(),
                    format!("{:?} does not load: {e}", n.model),
                    format!(
                        "set the models up with `bash models/setup.sh` (files go to {}), or check nlp.models_dir, nlp.cache_dir and nlp.heads_dir",
                        n.cache_dir.display()
                    ),
                )),
            }
        }
    }
    problems
}

/// ", did you mean \"x\"?" for the existing topic closest to `name`, if any is close.
fn closest(name: &str, existing: &[String]) -> String {
    let best = existing
        .iter()
        .map(|t| (edit_distance(name, t), t))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, t)) if d <= 2.max(name.len() / 4) => format!(", did you mean {t:?}?"),
        _ if existing.is_empty() => " (the cluster has no topics)".into(),
        _ => format!(" (it has: {})", existing.join(", ")),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_topic() {
        let existing = vec!["feedback".to_string(), "orders".to_string()];
        assert_eq!(
            closest("fedback", &existing),
            ", did you mean \"feedback\"?"
        );
        assert_eq!(closest("zzz", &existing), " (it has: feedback, orders)");
        assert_eq!(closest("x", &[]), " (the cluster has no topics)");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
