//! The command line as a user meets it: `check` and `ingest`.

use std::path::Path;

mod support;
use support::{run_ok, verbatim};

#[test]
fn check_prints_resolved_settings_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(
        &p,
        "[kafka]\nbrokers='b:9092'\ntopics=['t']\ngroup_id='g'\n[kafka.properties]\n'sasl.password'='hunter2'\n",
    )
    .unwrap();
    let out = verbatim().arg("check").arg(&p).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("max_records = 256"),
        "defaults are resolved: {stdout}"
    );
    assert!(!stdout.contains("hunter2") && stdout.contains("***"));
}

#[test]
fn check_names_file_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[output]\nzstd_level = 40\n").unwrap();
    let out = verbatim().arg("check").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.toml")
            && stderr.contains("output.zstd_level")
            && stderr.contains("Fix:"),
        "{stderr}"
    );

    std::fs::write(&p, "[outptu]\nroot = 'x'\n").unwrap();
    let out = verbatim().arg("check").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.toml") && stderr.contains("outptu"),
        "{stderr}"
    );
}

#[test]
fn shipped_pipelines_check() {
    for p in ["pipelines/feedback.toml", "pipelines/demo.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
        run_ok(verbatim().arg("check").arg(&path));
    }
}

fn count_rows(root: &Path, table: &str) -> usize {
    verbatim::cli::demo::parquet_files(&root.join(table))
        .iter()
        .map(|f| {
            parquet::file::reader::FileReader::metadata(
                &parquet::file::serialized_reader::SerializedFileReader::new(
                    std::fs::File::open(f).unwrap(),
                )
                .unwrap(),
            )
            .file_metadata()
            .num_rows() as usize
        })
        .sum()
}

/// Runs `verbatim ingest FILE --output-root ROOT`, which must succeed; returns stdout.
fn ingest(file: &Path, root: &Path) -> String {
    let out = run_ok(
        verbatim()
            .arg("ingest")
            .arg(file)
            .arg("--output-root")
            .arg(root),
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn ingest_jsonl_is_exact_and_rerunning_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backfill.jsonl");
    let mut lines = Vec::new();
    for i in 0..500 {
        lines.push(if i % 50 == 3 {
            "{broken".to_string()
        } else {
            format!(
                "{{\"id\": \"i{i}\", \"text\": \"comment {i}\", \"created_at\": \"2026-09-0{}\"}}",
                1 + i % 9
            )
        });
    }
    std::fs::write(&file, lines.join("\n")).unwrap();
    let root = dir.path().join("out");
    let run = || ingest(&file, &root);
    let first = run();
    assert!(first.contains("500 records read"), "{first}");
    assert_eq!(count_rows(&root, "comments"), 490);
    assert_eq!(count_rows(&root, "rejected"), 10);

    // Append more; a second run reads only the new lines.
    let mut more = lines.join("\n");
    for i in 500..520 {
        more.push_str(&format!(
            "\n{{\"id\": \"i{i}\", \"text\": \"late comment {i}\"}}"
        ));
    }
    std::fs::write(&file, more).unwrap();
    let second = run();
    assert!(second.contains("20 records read"), "{second}");
    assert_eq!(count_rows(&root, "comments"), 510);
    let third = run();
    assert!(third.contains("0 records read"), "{third}");
}

#[test]
fn ingest_csv_maps_columns() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("survey.csv");
    std::fs::write(
        &file,
        "id,text,score,staff_id,created_at\n1,\"Engineer was great, app crashes\",4,E1,2026-08-01\n2,,5,E2,2026-08-01\n",
    )
    .unwrap();
    let root = dir.path().join("out");
    ingest(&file, &root);
    assert_eq!(count_rows(&root, "comments"), 1);
    assert_eq!(
        count_rows(&root, "rejected"),
        1,
        "the empty text is rejected, not dropped"
    );
    assert!(root.join("comments/dt=2026-08-01").is_dir());
}

#[test]
fn ingest_of_a_missing_file_says_so() {
    let out = verbatim()
        .args(["ingest", "/nonexistent/file.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

#[test]
fn eval_flags_on_the_team_fixture() {
    // tests/fixtures/team_labelled.jsonl: 154 comments the team wrote, 8
    // domains, 40 in Russian, every flag with >= 15 positives.
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/team_labelled.jsonl");
    let out = run_ok(verbatim().args(["eval", "--json", "--input"]).arg(&input));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n"], 154);
    for (flag, prf) in v["flags"].as_object().unwrap() {
        let f1 = prf["f1"].as_f64().unwrap();
        assert!(prf["support"].as_u64().unwrap() >= 15, "{flag}");
        assert!(f1 >= 0.85, "{flag}: F1 {f1}");
    }
    assert_eq!(v["flags"].as_object().unwrap().len(), 5);
    // The whole analysis ran too: the 40 Russian rows are not analysed (the
    // model reads English only), the other 114 are scored.
    assert_eq!(v["analysed"], 114);
    assert_eq!(v["not_analysed"], 40);
    for key in [
        "targets",
        "complaints",
        "polarity_accuracy",
        "sentiment_accuracy",
    ] {
        assert!(!v[key].is_null(), "{key} missing");
    }
    // Delivery mentions are written in several domains of the fixture.
    assert!(v["targets"]["delivery"]["support"].as_u64().unwrap() >= 5);
}
