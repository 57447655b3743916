//! `verbatim actions`: where the follow-up queue stands.

use std::path::PathBuf;

use clap::Subcommand;

use super::load_or_default;
use crate::followup::status::{quantile, Sla, Status};
use crate::followup::{table, PRIORITIES};

/// Where the follow-up queue stands: answered, resolved, open, overdue.
#[derive(clap::Args, Debug)]
pub struct ActionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ActionsAction,
}

/// `verbatim actions` actions.
#[derive(Subcommand, Debug)]
pub enum ActionsAction {
    /// Match `responses/` to `actions/`, apply `[actions.sla]`, print the
    /// counts per priority with the time to a first answer (median and 90th
    /// percentile), and write `action_status/action_status.parquet`.
    Status {
        /// The job's output root: a folder, or a bucket (`s3://bucket/prefix`...)
        /// read with the `[output.storage]` of `--pipeline` (else the
        /// standard AWS_*/GOOGLE_*/AZURE_* environment).
        #[arg(long, value_parser = crate::config::parse_output_root)]
        output_root: PathBuf,
        /// Pipeline file whose `[actions.sla]` applies. Default: the
        /// built-in pipelines/feedback.toml (4h, 24h, 72h, 7d).
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// The moment to compute the statuses for (RFC 3339, e.g.
        /// 2026-11-20T09:00:00Z); default: now. Events after it are not seen.
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command.
pub fn execute(args: ActionsArgs) -> anyhow::Result<()> {
    let ActionsAction::Status {
        output_root,
        pipeline,
        as_of,
        json,
    } = args.action;
    let cfg = load_or_default(pipeline.as_deref(), true, super::if_bucket(&output_root))?;
    let sla = Sla(cfg
        .actions
        .sla
        .spans()
        .map_err(|(k, p)| anyhow::anyhow!("actions.sla.{k} {p}"))?);
    let as_of = as_of.map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
    let store = super::open_output(&output_root, &cfg, None)?;
    let root = store.readable(&table::STATUS_INPUTS)?;
    let report = table::status_of(&root, &sla, as_of)?;
    let path = format!("{}/{}", store.url(), table::write_status(&store, &report)?);
    let counts = report.counts();
    let mut rows = Vec::new();
    for (i, label) in PRIORITIES.iter().enumerate() {
        let p = (i + 1) as u8;
        let n = |s: Status| counts.get(&(p, s)).copied().unwrap_or(0);
        let hours: Vec<f64> = report
            .actions
            .iter()
            .filter(|a| a.action.priority == p)
            .filter_map(|a| a.hours_to_first_response)
            .collect();
        let total: usize = Status::ALL.iter().map(|s| n(*s)).sum();
        rows.push(serde_json::json!({
            "priority": label,
            "sla_hours": sla.of(p).num_minutes() as f64 / 60.0,
            "actions": total,
            "open": n(Status::Open),
            "overdue": n(Status::Overdue),
            "answered": n(Status::Answered),
            "resolved": n(Status::Resolved),
            "median_hours_to_first_response": quantile(&hours, 0.5),
            "p90_hours_to_first_response": quantile(&hours, 0.9),
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "as_of": report.as_of.to_rfc3339(),
                "priorities": rows,
                "unmatched_responses": report.unmatched,
                "duplicate_responses": report.duplicates,
                "early_responses": report.early,
                "later_responses": report.later,
                "table": path,
            }))?
        );
        return Ok(());
    }
    println!("action status as of {}", report.as_of.to_rfc3339());
    println!(
        "{:<8} {:>6} {:>8} {:>6} {:>8} {:>9} {:>9} {:>12} {:>9}",
        "priority",
        "sla_h",
        "actions",
        "open",
        "overdue",
        "answered",
        "resolved",
        "median_h",
        "p90_h"
    );
    let h = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.1}"));
    for r in &rows {
        println!(
            "{:<8} {:>6} {:>8} {:>6} {:>8} {:>9} {:>9} {:>12} {:>9}",
            r["priority"].as_str().unwrap_or_default(),
            h(&r["sla_hours"]),
            r["actions"],
            r["open"],
            r["overdue"],
            r["answered"],
            r["resolved"],
            h(&r["median_hours_to_first_response"]),
            h(&r["p90_hours_to_first_response"]),
        );
    }
    if report.unmatched + report.duplicates + report.early > 0 {
        println!(
            "responses: {} to comments not in the queue, {} sent twice (counted once), {} dated before their comment (counted as answered at once)",
            report.unmatched, report.duplicates, report.early
        );
    }
    println!("wrote {path}");
    Ok(())
}
