//! The demo, run as the README says, read back by an independent reader:
//! DuckDB (PyPI `duckdb`, pinned in `.ci/requirements-test.txt`). The
//! README's own example queries run here and must return the counts the
//! bundled sample implies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{models_ready, run_ok};

fn python() -> Option<PathBuf> {
    support::python_with("duckdb")
}

/// What the sample implies, computed straight from the JSONL without verbatim:
/// lines whose id starts with `fb-0` are good comments; the rest are the
/// deliberately malformed ones.
fn expected_per_product() -> (BTreeMap<String, i64>, usize) {
    let mut per = BTreeMap::new();
    let mut bad = 0;
    for line in verbatim::cli::demo::SAMPLE
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let v: Option<serde_json::Value> = serde_json::from_slice(line).ok();
        match v
            .as_ref()
            .and_then(|v| v.get("id")?.as_str().map(|id| (id, v)))
        {
            Some((id, v)) if id.starts_with("fb-0") => {
                *per.entry(v["product"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
            }
            _ => bad += 1,
        }
    }
    (per, bad)
}

#[test]
fn demo_output_reads_back_in_duckdb_and_readme_queries_hold() {
    let Some(py) = python() else { return };
    if !models_ready() {
        eprintln!("skipping: run `bash models/setup.sh` (the demo embeds comments)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // README's first command (from the repo root, where the models are),
    // writing into a fresh folder.
    let out = run_ok(
        support::verbatim()
            .args(["demo", "--output-root"])
            .arg(dir.path().join("out/demo")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("query it with DuckDB"), "{stdout}");
    let page = dir.path().join("out/demo/report.html");
    assert!(
        stdout.contains(&page.display().to_string()) && page.is_file(),
        "the demo ends by writing the report and printing its path: {stdout}"
    );

    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/duckdb/readme_queries.py");
    let res = run_ok(Command::new(&py).arg(&script).arg(&readme).arg(dir.path()));
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();

    let (per_product, bad) = expected_per_product();
    // README query `comments-by-product`: product, comments, avg_score, detractors.
    let rows = v["comments-by-product"]
        .as_array()
        .expect("README query comments-by-product");
    let got: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(got, per_product);
    // README query `rejected-by-reason`: every malformed line, by reason.
    let rej: i64 = v["rejected-by-reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_i64().unwrap())
        .sum();
    // The follow-up events the CRM sent with an outcome it invented.
    let bad_events = verbatim::cli::demo::RESPONSES
        .split(|b| *b == b'\n')
        .filter(|l| {
            serde_json::from_slice::<serde_json::Value>(l).is_ok_and(|v| {
                v["outcome"]
                    .as_str()
                    .is_some_and(|o| verbatim::comment::Outcome::parse(o).is_none())
            })
        })
        .count();
    assert_eq!(bad_events, 1);
    assert_eq!(rej as usize, bad + bad_events);
    // README query `did-we-answer` agrees with actions/ joined to
    // responses/ in SQL, and the demo's CRM answered part of the queue.
    let answered: Vec<serde_json::Value> = v["did-we-answer"]
        .as_array()
        .expect("README query did-we-answer")
        .iter()
        .map(|r| serde_json::json!([r[0], r[1], r[3]]))
        .collect();
    assert_eq!(&answered, v["_answered_check"].as_array().unwrap());
    let (total, reached): (i64, i64) = answered
        .iter()
        .map(|r| (r[1].as_i64().unwrap(), r[2].as_i64().unwrap()))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(reached >= 10 && reached < total, "{answered:?}");
    // `verbatim actions status` as of an earlier moment sees fewer answers
    // (events after it are not seen yet) and more open actions.
    let earlier = run_ok(
        support::verbatim()
            .args([
                "actions",
                "status",
                "--as-of",
                "2026-11-10T00:00:00Z",
                "--json",
            ])
            .arg("--output-root")
            .arg(dir.path().join("out/demo")),
    );
    let e: serde_json::Value = serde_json::from_slice(&earlier.stdout).unwrap();
    let sum = |key: &str| -> i64 {
        e["priorities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[key].as_i64().unwrap())
            .sum()
    };
    assert_eq!(sum("actions"), total, "{e}");
    assert!(sum("answered") + sum("resolved") < reached, "{e}");
    assert!(e["later_responses"].as_i64().unwrap() > 0, "{e}");
    assert_eq!(e["duplicate_responses"], 1, "the CRM sent one event twice");
    assert_eq!(
        e["unmatched_responses"], 1,
        "one event answers a comment never queued"
    );
    assert_eq!(
        v["_dt_mismatch"], 0,
        "dt partition disagrees with event_time"
    );
    assert_eq!(v["_dup_coords"], 0);
    // Every comment embedded (384-d).
    let comments: i64 = per_product.values().sum();
    assert_eq!(
        v["_embedded"],
        serde_json::json!([[comments, 384]]),
        "every comment embedded"
    );
    // README query `follow-up`: every row names a follow-up flag and quotes its evidence.
    let follow = v["follow-up"].as_array().expect("README query follow-up");
    assert!(follow.len() >= 30, "only {} follow-up rows", follow.len());
    for r in follow {
        let flag = r[3].as_str().unwrap();
        assert!(
            ["contact_requested", "repeat_issue", "safety_risk"].contains(&flag),
            "{r}"
        );
        assert!(!r[4].as_str().unwrap().is_empty());
    }
    // PII never reaches the table.
    assert_eq!(v["_pii_left"], 0, "PII reached the comments table");
    // The sample's three PII comments hold 5 spans: phone + email, card + phone, email.
    assert_eq!(v["_pii_redacted"], 5);
    // The sample's 41 Russian comments are detected as such; the rest are English.
    let langs: BTreeMap<String, i64> = v["_languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or("null").to_string(),
                r[1].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(langs.get("ru"), Some(&41), "{langs:?}");
    assert_eq!(langs.get("en"), Some(&(comments - 41)), "{langs:?}");
    assert_eq!(
        v["_schema_version"],
        serde_json::json!([[verbatim::sink::schema::SCHEMA_VERSION]])
    );
    // README query `staff-blame` agrees with the comments table's own
    // blames_staff / blames_product columns, and is not empty.
    let blame = v["staff-blame"]
        .as_array()
        .expect("README query staff-blame");
    assert!(!blame.is_empty(), "no staff complaints in the demo");
    let check: Vec<serde_json::Value> = v["_staff_blame_check"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::json!([r[0], r[1]]))
        .collect();
    assert_eq!(blame, &check);
    // README query `themes-growing`: the demo's comments form themes.
    let growing = v["themes-growing"]
        .as_array()
        .expect("README query themes-growing");
    assert!(!growing.is_empty(), "no themes in the demo");
    // README query `repeat-customers` agrees with repeats recomputed from
    // mentions/ in SQL; the sample's customers who complain twice are found.
    // (README rows come back with lists as text, the check's as JSON.)
    let ids_of = |v: &serde_json::Value| -> Vec<String> {
        let mut ids: Vec<String> = match v {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            other => other
                .as_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .split(", ")
                .map(|s| s.trim_matches('\'').to_string())
                .collect(),
        };
        ids.sort();
        ids
    };
    let mut repeats: Vec<(String, Vec<String>)> = v["repeat-customers"]
        .as_array()
        .expect("README query repeat-customers")
        .iter()
        .map(|r| {
            assert_eq!(r[0].as_str().map(str::len), Some(32), "hashed: {r}");
            (r[1].as_str().unwrap_or_default().to_string(), ids_of(&r[3]))
        })
        .collect();
    repeats.sort();
    let check: Vec<(String, Vec<String>)> = v["_repeat_check"]
        .as_array()
        .expect("_repeat_check")
        .iter()
        .map(|r| (r[0].as_str().unwrap_or_default().to_string(), ids_of(&r[1])))
        .collect();
    assert_eq!(repeats, check);
    assert!(
        repeats.len() >= 4,
        "the sample has six customers with two or three complaints: {repeats:?}"
    );
    // mentions/ holds exactly the aspects of comments/.
    let mv = v["_mentions_vs_aspects"].as_array().unwrap();
    assert_eq!(mv[0], mv[1]);
    assert!(
        mv[0].as_i64().unwrap() > comments,
        "about two aspects a comment"
    );
    // English and Russian comments are both analysed by the default
    // multilingual model (issue 12: no `ru` row skipped for its language).
    let mut languages = Vec::new();
    for r in v["_analysis"].as_array().unwrap() {
        let (lang, skipped, n, sent, asp) = (&r[0], &r[1], &r[2], &r[3], &r[4]);
        assert!(lang == "en" || lang == "ru", "{r}");
        assert!(skipped.is_null(), "{r}");
        assert_eq!((sent, asp), (n, n), "{r}");
        languages.push(lang.as_str().unwrap().to_string());
    }
    languages.sort();
    assert_eq!(languages, ["en", "ru"]);

    report_matches_duckdb(&v, dir.path());
}

/// The report's numbers (its JSON, from verbatim's own Parquet reader) equal
/// the README's DuckDB queries behind each section on the same files.
fn report_matches_duckdb(v: &serde_json::Value, dir: &Path) {
    let out = run_ok(
        support::verbatim()
            .args(["report", "--format", "json", "--output-root"])
            .arg(dir.join("out/demo")),
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let close = |a: &serde_json::Value, b: &serde_json::Value, what: &str| {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((a - b).abs() < 1e-9, "{what}: report {a} vs duckdb {b}");
    };
    // 1. Scores: the histogram's non-empty bins.
    let hist: Vec<(String, i64)> = r["overview"]["scores"]["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b[0].as_str().unwrap().to_string(), b[1].as_i64().unwrap()))
        .filter(|b| b.1 > 0)
        .collect();
    let sql: Vec<(String, i64)> = v["report-scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b[0].as_i64().unwrap().to_string(), b[1].as_i64().unwrap()))
        .collect();
    assert_eq!(hist, sql);
    // 7. Did we answer?: per priority, queued and answered as the README's
    // `did-we-answer` query over action_status/ says.
    for q in v["did-we-answer"].as_array().unwrap() {
        let p = q[0].as_u64().unwrap() as usize;
        let row = &r["answered"]["by_priority"][p - 1];
        assert_eq!(row["actions"], q[1], "priority {p}: {row}");
        assert_eq!(row["answered"]["k"], q[3], "priority {p}: {row}");
        assert_eq!(row["overdue"], q[2], "priority {p}: {row}");
    }
    let queued: u64 = r["answered"]["queued"].as_u64().unwrap();
    assert!(queued > 0 && !r["answered"]["overdue"].as_array().unwrap().is_empty());
    assert!(
        !r["answered"]["repeat_customers"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the sample's repeat customers are listed"
    );
    // 2. Themes: counts and complaint shares of the top themes.
    let themes: BTreeMap<i64, &serde_json::Value> = v["report-themes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_i64().unwrap(), t))
        .collect();
    let top = r["themes"]["top"].as_array().unwrap();
    assert!(!top.is_empty());
    for t in top {
        let q = themes[&t["id"].as_i64().unwrap()];
        assert_eq!(t["count"], q[1]);
        close(&t["complaint_share"]["staff"], &q[2], "staff share");
        close(&t["complaint_share"]["product"], &q[3], "product share");
        close(&t["complaint_share"]["process"], &q[4], "process share");
    }
    // 3. Scorecard: comments, both rates and both Wilson intervals, per staff id.
    let card = r["scorecard"]["staff"].as_array().unwrap();
    let sql = v["report-scorecard"].as_array().unwrap();
    assert_eq!(card.len(), sql.len());
    assert!(card.len() > 10, "the demo has staff ids");
    for q in sql {
        let s = card
            .iter()
            .find(|s| s["key"] == q[0])
            .expect("staff id in the report");
        assert_eq!(s["comments"], q[1]);
        close(&s["negative"]["rate"], &q[2], "negative rate");
        close(&s["negative"]["low"], &q[3], "negative low");
        close(&s["negative"]["high"], &q[4], "negative high");
        close(&s["corrected"]["rate"], &q[5], "aimed rate");
        close(&s["corrected"]["low"], &q[6], "aimed low");
        close(&s["corrected"]["high"], &q[7], "aimed high");
    }
    // 3b. Praised / criticised for: every staff theme the report names for
    // a person has that many of their staff clauses of that polarity in
    // `mentions/`, and is among their most mentioned.
    let themes = v["report-staff-themes"].as_array().unwrap();
    assert_eq!(
        r["scorecard"]["staff_themes"], true,
        "the demo themes mentions"
    );
    let mut named = 0;
    for s in card {
        for (field, polarity) in [("praised_for", "positive"), ("criticised_for", "negative")] {
            let sql: Vec<&serde_json::Value> = themes
                .iter()
                .filter(|q| q[0] == s["key"] && q[1] == polarity)
                .collect();
            let listed = s[field].as_array().unwrap();
            assert_eq!(listed.len(), sql.len().min(3), "{}: {field}", s["key"]);
            for t in listed {
                let q = sql
                    .iter()
                    .find(|q| q[2] == t["id"])
                    .unwrap_or_else(|| panic!("{}: {t} not in mentions/", s["key"]));
                assert_eq!((&t["label"], &t["mentions"]), (&q[3], &q[4]));
                assert!(t["mentions"].as_i64() >= sql.get(2).and_then(|q| q[4].as_i64()));
                named += 1;
            }
        }
    }
    assert!(
        named > 0,
        "the demo's staff are praised or criticised for something"
    );
    // README query `product-complaint-themes`: product themes only, most
    // complained about first, each with a clause of its own.
    let complaints = v["product-complaint-themes"].as_array().unwrap();
    assert!(complaints.len() >= 5, "{complaints:?}");
    let counts: Vec<i64> = complaints.iter().map(|q| q[2].as_i64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    for q in complaints {
        assert!(q[1].as_str().is_some_and(|l| !l.is_empty()), "{q}");
        assert!(q[3].as_i64().unwrap() <= q[2].as_i64().unwrap(), "{q}");
        assert!(q[4].as_str().is_some_and(|c| !c.is_empty()), "{q}");
    }
    // 4. Solicitation per location.
    for q in v["report-solicitation"].as_array().unwrap() {
        let g = r["solicitation"]["by_location"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == q[0])
            .expect("location in the report");
        assert_eq!((&g["rate"]["k"], &g["rate"]["n"]), (&q[1], &q[2]));
    }
    // 5. The follow-up queue, in order.
    let queue: Vec<(&str, i64)> = r["follow_up"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f["priority"].as_i64().unwrap()))
        .collect();
    let sql: Vec<(&str, i64)> = v["report-follow-up"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f[0].as_str().unwrap(), f[1].as_i64().unwrap()))
        .collect();
    assert_eq!(queue, sql);
    assert!(queue.iter().any(|q| q.1 == 1), "the demo has safety risks");
    // 6. Survey fatigue per day: (day, complaining, comments), as the report
    // and as DuckDB have them.
    assert_eq!(r["fatigue"]["daily"], v["report-fatigue"]);
}
