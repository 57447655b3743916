//! `verbatim themes`: curate, refit and tabulate the themes under an output root.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::PipelineConfig;
use crate::themes::curation;
use crate::themes::store::ThemeStore;

/// Curate and refit the themes under an output root.
#[derive(clap::Args, Debug)]
pub struct ThemesArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ThemesAction,
}

/// The output root a `themes` action works on.
#[derive(clap::Args, Debug)]
pub struct Root {
    /// The job's output root (comments/ with embeddings, themes/): a
    /// folder, or a bucket (`s3://bucket/prefix`...) opened with the
    /// `[output.storage]` of `--pipeline` (else the standard
    /// AWS_*/GOOGLE_*/AZURE_* environment); a bucket's comments/ are read
    /// from a local copy in the system temp folder (new files only).
    #[arg(long, value_parser = crate::config::parse_output_root)]
    output_root: PathBuf,
    /// Pipeline file: its `[output.storage]` opens a bucket, and `refit`
    /// takes its `[themes]` settings when there is no model yet.
    #[arg(long)]
    pipeline: Option<PathBuf>,
}

impl Root {
    /// The pipeline (or the built-in one) and the theme files under the root.
    fn open(&self) -> anyhow::Result<(PipelineConfig, ThemeStore)> {
        let cfg = super::pipeline_at(
            self.pipeline.as_deref(),
            super::if_bucket(&self.output_root),
        )?;
        let store = super::open_output(&self.output_root, &cfg, None)?;
        Ok((cfg, ThemeStore::new(store)))
    }
}

/// `verbatim themes` actions.
#[derive(Subcommand, Debug)]
pub enum ThemesAction {
    /// List every theme, largest first: id, comments, label.
    List {
        /// The output root.
        #[command(flatten)]
        root: Root,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Only the themes of this target (`product`, `staff`...; with
        /// `themes.unit = "mention"`); repeat it for several, listed in
        /// the order given.
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<String>,
        /// At most this many themes (per target with `--target`).
        #[arg(long)]
        top: Option<usize>,
        /// Under each theme, its keywords and up to this many exemplars
        /// (the texts nearest its centre).
        #[arg(long, default_value_t = 0)]
        exemplars: usize,
    },
    /// Show one theme: label (and per language), keywords, comments, merged ids, top phrases, exemplars.
    Show {
        /// Theme id (a merged-away id shows the theme that took it in).
        id: u32,
        /// The output root.
        #[command(flatten)]
        root: Root,
    },
    /// Give a theme a label of your own; refits and relabelling keep it.
    Rename {
        /// Theme id.
        id: u32,
        /// The new label.
        label: String,
        /// The output root.
        #[command(flatten)]
        root: Root,
    },
    /// Merge theme B into theme A; B's id then stands for A.
    Merge {
        /// The theme that stays.
        a: u32,
        /// The theme merged into it.
        b: u32,
        /// The output root.
        #[command(flatten)]
        root: Root,
    },
    /// Re-cluster the stored embeddings as a batch job, keep the ids that
    /// survive, mint new ones, record merges and splits, and write a new
    /// model version; running jobs take it over at their next commit.
    Refit {
        /// The output root.
        #[command(flatten)]
        root: Root,
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
        /// The output root.
        #[command(flatten)]
        root: Root,
    },
}

/// Runs one `verbatim themes` action and prints its result.
pub fn execute(args: ThemesArgs) -> anyhow::Result<()> {
    let action = args.action;
    let print = |t: &curation::ThemeInfo| {
        println!(
            "theme {}: {} ({} {}){}",
            t.id,
            t.label,
            t.comments,
            match &t.target {
                Some(target) => format!("{target} mentions"),
                None => "comments".into(),
            },
            if t.curated { ", renamed" } else { "" }
        );
        if !t.keywords.is_empty() {
            println!("  keywords: {}", t.keywords.join(", "));
        }
        for (lang, l) in &t.label_by_language {
            println!("  label ({lang}): {l}");
        }
        if !t.merged.is_empty() {
            println!("  merged in: {:?}", t.merged);
        }
        let terms: Vec<String> = t
            .top_terms
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        println!("  top phrases: {}", terms.join(", "));
        for e in &t.exemplars {
            println!("  - {e}");
        }
    };
    match action {
        ThemesAction::List {
            root,
            json,
            targets,
            top,
            exemplars,
        } => {
            let all = curation::top(curation::list(&root.open()?.1)?, &targets, top);
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", curation::render_list(&all, exemplars));
            }
        }
        ThemesAction::Show { id, root } => print(&curation::show(&root.open()?.1, id)?),
        ThemesAction::Rename { id, label, root } => {
            print(&curation::rename(&root.open()?.1, id, &label)?);
        }
        ThemesAction::Merge { a, b, root } => print(&curation::merge(&root.open()?.1, a, b)?),
        ThemesAction::Refit {
            root,
            from_scratch,
            rounds,
            json,
        } => {
            let (c, store) = root.open()?;
            // Used only when there is no model yet (a stored model keeps
            // the thresholds it was made with).
            let cfg = match (&root.pipeline, &c.nlp) {
                (Some(_), Some(nlp)) => c.themes.calibrated(
                    &crate::nlp::model::ModelManifest::load(&nlp.models_dir, &nlp.model)?
                        .calibration,
                ),
                (Some(_), None) => c.themes,
                (None, _) => crate::config::ThemesConfig::default(),
            };
            let s = crate::themes::refit::refit(
                &store,
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
                    s.retention * 100.0, s.outlier_share * 100.0, s.path
                );
            }
        }
        ThemesAction::Daily { root } => {
            let (path, rows) = crate::themes::daily::write_daily(&root.open()?.1)?;
            println!("wrote {path} ({rows} rows)");
        }
    }
    Ok(())
}
