//! `verbatim themes`: curate, refit and tabulate the themes under an output root.

use std::path::PathBuf;

use clap::Subcommand;

use super::load;
use crate::themes::curation;

/// Curate and refit the themes under an output root.
#[derive(clap::Args, Debug)]
pub struct ThemesArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ThemesAction,
}

/// `verbatim themes` actions.
#[derive(Subcommand, Debug)]
pub enum ThemesAction {
    /// List every theme, largest first: id, comments, label.
    List {
        /// The job's output root.
        #[arg(long, value_parser = crate::config::parse_local_root)]
        output_root: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one theme: label, comments, merged ids, top terms, exemplars.
    Show {
        /// Theme id (a merged-away id shows the theme that took it in).
        id: u32,
        /// The job's output root.
        #[arg(long, value_parser = crate::config::parse_local_root)]
        output_root: PathBuf,
    },
    /// Give a theme a label of your own; refits and relabelling keep it.
    Rename {
        /// Theme id.
        id: u32,
        /// The new label.
        label: String,
        /// The job's output root.
        #[arg(long, value_parser = crate::config::parse_local_root)]
        output_root: PathBuf,
    },
    /// Merge theme B into theme A; B's id then stands for A.
    Merge {
        /// The theme that stays.
        a: u32,
        /// The theme merged into it.
        b: u32,
        /// The job's output root.
        #[arg(long, value_parser = crate::config::parse_local_root)]
        output_root: PathBuf,
    },
    /// Re-cluster the stored embeddings as a batch job, keep the ids that
    /// survive, mint new ones, record merges and splits, and write a new
    /// model version; running jobs take it over at their next commit.
    Refit {
        /// The job's output root (comments/ with embeddings, themes/).
        #[arg(long, value_parser = crate::config::parse_local_root)]
        output_root: PathBuf,
        /// Pipeline whose [themes] settings to use when there is no model yet.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Cluster everything afresh (average linkage over all stored
        /// embeddings, in a fixed order) and match the clusters to the old
        /// ids, instead of starting from the current centroids: the result
        /// no longer depends on the order the stream arrived in.
        #[arg(long)]
        from_scratch: bool,
        /// k-means rounds from the current centroids: 1 keeps ids best
        /// (99% on 3,000 shuffled banking77 queries), 3 regroups more (83%).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild theme_daily/ (theme, day, counts, sentiment mix, complaint
    /// shares, spike flag) from comments/.
    Daily {
        /// The job's output root.
        #[arg(long, value_parser = crate::config::parse_local_root)]
        output_root: PathBuf,
    },
}

/// Runs one `verbatim themes` action and prints its result.
pub fn execute(args: ThemesArgs) -> anyhow::Result<()> {
    let action = args.action;
    let print = |t: &curation::ThemeInfo| {
        println!(
            "theme {}: {} ({} comments){}",
            t.id,
            t.label,
            t.comments,
            if t.curated { ", renamed" } else { "" }
        );
        if !t.merged.is_empty() {
            println!("  merged in: {:?}", t.merged);
        }
        let terms: Vec<String> = t
            .top_terms
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        println!("  top terms: {}", terms.join(", "));
        for e in &t.exemplars {
            println!("  - {e}");
        }
    };
    match action {
        ThemesAction::List { output_root, json } => {
            let all = curation::list(&output_root)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{:>6}  {:>8}  label", "id", "comments");
                for t in &all {
                    println!(
                        "{:>6}  {:>8}  {}{}",
                        t.id,
                        t.comments,
                        t.label,
                        if t.curated { " (renamed)" } else { "" }
                    );
                }
            }
        }
        ThemesAction::Show { id, output_root } => print(&curation::show(&output_root, id)?),
        ThemesAction::Rename {
            id,
            label,
            output_root,
        } => {
            print(&curation::rename(&output_root, id, &label)?);
        }
        ThemesAction::Merge { a, b, output_root } => print(&curation::merge(&output_root, a, b)?),
        ThemesAction::Refit {
            output_root,
            pipeline,
            from_scratch,
            rounds,
            json,
        } => {
            // Used only when there is no model yet (a stored model keeps
            // the thresholds it was made with).
            let cfg = match &pipeline {
                Some(p) => {
                    let c = load(p)?;
                    match &c.nlp {
                        Some(nlp) => c.themes.calibrated(
                            &crate::nlp::model::ModelManifest::load(&nlp.models_dir, &nlp.model)?
                                .calibration,
                        ),
                        None => c.themes,
                    }
                }
                None => crate::config::ThemesConfig::default(),
            };
            let s = crate::themes::refit::refit(
                &output_root,
                &cfg,
                crate::themes::refit::RefitOptions {
                    from_scratch,
                    rounds,
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "refit: {} comments, {} themes -> {} (kept {}, new {}, retired {}, merges {}, splits {}); {:.1}% of comments kept their theme id; outliers {:.1}%; wrote {}",
                    s.comments, s.themes_before, s.themes_after, s.kept, s.new.len(), s.retired.len(), s.merges.len(), s.splits.len(),
                    s.retention * 100.0, s.outlier_share * 100.0, s.path.display()
                );
            }
        }
        ThemesAction::Daily { output_root } => {
            let (path, rows) = crate::themes::daily::write_daily(&output_root)?;
            println!("wrote {} ({rows} rows)", path.display());
        }
    }
    Ok(())
}
