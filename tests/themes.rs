//! Themes: the banking77 scores of `verbatim eval-themes`, and theme ids
//! that survive a restart of the job.
//!
//! Needs `bash models/setup.sh` and ../shared/data; without them the tests
//! skip, unless `VERBATIM_REQUIRE_SETUP=1` (set by .ci/test.sh).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, Int32Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ready() -> Option<PathBuf> {
    let data = root().join("../shared/data/labelled/banking77_train.jsonl");
    let model = root().join(".cache/models/all-MiniLM-L6-v2/model.int8.onnx");
    if data.is_file() && model.is_file() {
        return Some(data);
    }
    let required = std::env::var("VERBATIM_REQUIRE_SETUP").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "run `bash models/setup.sh` with ../shared beside"
    );
    eprintln!("skipping: model or ../shared/data missing");
    None
}

fn verbatim(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_verbatim"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Issue 5, point 1: one pass in input order over banking77 (77 intents),
/// scored for int8 and fp32.
#[test]
fn banking77_online_themes_match_the_batch_baseline() {
    let Some(data) = ready() else { return };
    // int8 (the default) and fp32 in one run: int8 stays the default only
    // while it is within a point of fp32 (issue 3).
    let out = verbatim(&[
        "eval-themes",
        "--json",
        "--compare-precision",
        "--input",
        data.to_str().unwrap(),
    ]);
    let both: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{both}");
    assert_eq!(both["within_one_point"], true);
    let v = &both["int8"];
    let nmi = v["nmi"].as_f64().unwrap();
    let base = v["batch_baseline"]["nmi"].as_f64().unwrap();
    assert_eq!(v["n"], 10003);
    assert!(nmi >= 0.75, "online NMI {nmi}");
    assert!(nmi >= base - 0.05, "online NMI {nmi}, k-means {base}");
    assert!(v["themes"].as_u64().unwrap() <= 2 * 77);
    assert!(v["outlier_share"].as_f64().unwrap() <= 0.10);
}

fn themes_by_id(dir: &Path) -> HashMap<String, i32> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.join("comments")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let r = ParquetRecordBatchReaderBuilder::try_new(File::open(&p).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
                for b in r {
                    let b = b.unwrap();
                    let ids = b.column_by_name("id").unwrap();
                    let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
                    let th = b.column_by_name("theme_id").unwrap();
                    let th = th.as_any().downcast_ref::<Int32Array>().unwrap();
                    for i in 0..b.num_rows() {
                        if th.is_valid(i) {
                            out.insert(ids.value(i).to_string(), th.value(i));
                        }
                    }
                }
            }
        }
    }
    out
}

fn ingest(file: &Path, out: &Path) {
    let p = root().join("pipelines/demo.toml");
    verbatim(&[
        "ingest",
        file.to_str().unwrap(),
        "--pipeline",
        p.to_str().unwrap(),
        "--output-root",
        out.to_str().unwrap(),
    ]);
}

/// Issue 5, point 3: stop the job, start it again, and comments identical to
/// earlier ones get exactly the theme ids they get when the job never
/// stopped: the saved state is the whole model (themes, novelty buffer,
/// counters), not an approximation of it.
#[test]
fn restart_keeps_theme_ids() {
    let Some(data) = ready() else { return };
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    // Five intents' worth of comments (the file is sorted by intent), then
    // every 25th of them again under new ids, plus comments of new intents.
    // 640 rows = 10 batches of the demo pipeline's 64, so both runs embed the
    // same batches (int8 activations are quantized per batch).
    let first: Vec<String> = rows.iter().take(640).map(|r| r.to_string()).collect();
    let mut second: Vec<String> = rows
        .iter()
        .take(640)
        .step_by(25)
        .map(|r| {
            serde_json::json!({"id": format!("again-{}", r["id"].as_str().unwrap()), "text": r["text"]})
                .to_string()
        })
        .collect();
    second.extend(rows.iter().skip(640).take(200).map(|r| r.to_string()));
    let (a, b, ab) = (
        dir.path().join("a.jsonl"),
        dir.path().join("b.jsonl"),
        dir.path().join("ab.jsonl"),
    );
    std::fs::write(&a, first.join("\n")).unwrap();
    std::fs::write(&b, second.join("\n")).unwrap();
    std::fs::write(&ab, [first.join("\n"), second.join("\n")].join("\n")).unwrap();

    // Stopped and restarted between the two files...
    let restarted = dir.path().join("restarted");
    ingest(&a, &restarted);
    assert!(
        restarted.join("themes/state.json").is_file(),
        "theme state saved"
    );
    let before = themes_by_id(&restarted);
    ingest(&b, &restarted);
    // ...and never stopped.
    let continuous = dir.path().join("continuous");
    ingest(&ab, &continuous);

    let r = themes_by_id(&restarted);
    let c = themes_by_id(&continuous);
    assert_eq!(r.len(), c.len());
    for (id, theme) in &r {
        assert_eq!(Some(theme), c.get(id), "{id}");
    }
    // The ids of the first run were not renumbered by the second.
    for (id, theme) in &before {
        assert_eq!(r.get(id), Some(theme), "{id}");
    }
    let again = r.keys().filter(|k| k.starts_with("again-")).count();
    assert!(again >= 20, "only {again} repeated comments had a theme");
}
