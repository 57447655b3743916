//! Themes: the banking77 scores of `verbatim eval-themes`, and theme ids
//! that survive a restart of the job.
//!
//! Needs `bash models/setup.sh` and ../shared/data; without them the tests
//! skip, unless `VERBATIM_REQUIRE_SETUP=1` (set by .ci/test.sh).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, Int32Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

mod support;
use support::{required, root, run_ok};

fn ready() -> Option<PathBuf> {
    let data = root().join("../shared/data/labelled/banking77_train.jsonl");
    // pipelines/demo.toml's model.
    let model = root().join(".cache/models/multilingual-e5-small/model.int8.onnx");
    if data.is_file() && model.is_file() {
        return Some(data);
    }
    assert!(
        !required(),
        "run `bash models/setup.sh` with ../shared beside"
    );
    eprintln!("skipping: model or ../shared/data missing");
    None
}

fn verbatim(args: &[&str]) -> std::process::Output {
    run_ok(support::verbatim().args(args))
}

/// `pipelines/demo.toml` with whole-comment themes (the demo themes
/// mentions; these tests measure and keep the comment unit).
fn comment_demo() -> String {
    let demo = std::fs::read_to_string(root().join("pipelines/demo.toml")).unwrap();
    assert!(demo.contains("\nunit = \"mention\"\n"), "{demo}");
    demo.replace("\nunit = \"mention\"\n", "\nunit = \"comment\"\n")
}

/// [`comment_demo`] as a file in `dir`.
fn comment_demo_file(dir: &Path) -> PathBuf {
    let p = dir.join("demo-comment.toml");
    std::fs::write(&p, comment_demo()).unwrap();
    p
}

/// [`comment_demo`] with another model: a file in `dir`.
fn demo_pipeline_with(model: &str, dir: &Path) -> PathBuf {
    let demo = comment_demo();
    let (head, tail) = demo.split_once("\nmodel = ").unwrap();
    let rest = tail.split_once('\n').unwrap().1;
    let p = dir.join(format!("demo-{model}.toml"));
    std::fs::write(&p, format!("{head}\nmodel = {model:?}\n{rest}")).unwrap();
    p
}

/// Issue 5, point 1: one pass in input order over banking77 (77 intents),
/// scored for int8 and fp32, with all-MiniLM-L6-v2 (the model issue 5's
/// bars were set on; the multilingual default is held to issue 12's bar in
/// `the_default_model_themes_as_well_as_minilm_in_shuffled_orders`).
#[test]
fn banking77_online_themes_match_the_batch_baseline() {
    let Some(data) = ready() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mini = demo_pipeline_with("all-MiniLM-L6-v2", dir.path());
    // int8 (the default) and fp32 in one run: int8 stays the default only
    // while it is within a point of fp32 (issue 3).
    let out = verbatim(&[
        "eval-themes",
        "--json",
        "--compare-precision",
        "--pipeline",
        mini.to_str().unwrap(),
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
    theme_rows(dir)
        .into_iter()
        .filter_map(|(id, t, _)| t.map(|t| (id, t)))
        .collect()
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ingest(file: &Path, out: &Path) {
    let dir = out.parent().unwrap();
    ingest_with(file, out, &comment_demo_file(dir));
}

fn ingest_with(file: &Path, out: &Path, pipeline: &Path) {
    verbatim(&[
        "ingest",
        file.to_str().unwrap(),
        "--pipeline",
        pipeline.to_str().unwrap(),
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
    let rows = jsonl(&data);
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

/// Every record batch of the Parquet files under `dir/comments`.
fn comment_batches(dir: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    verbatim::cli::demo::parquet_files(&dir.join("comments"))
        .into_iter()
        .flat_map(|p| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
        })
        .collect()
}

/// Every `(id, theme_id, theme_label)` under `dir/comments`.
fn theme_rows(dir: &Path) -> Vec<(String, Option<i32>, Option<String>)> {
    let mut out = Vec::new();
    for b in comment_batches(dir) {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (ids, th, lb) = (col("id"), col("theme_id"), col("theme_label"));
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let th = th.as_any().downcast_ref::<Int32Array>().unwrap();
        let lb = lb.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            out.push((
                ids.value(i).to_string(),
                th.is_valid(i).then(|| th.value(i)),
                lb.is_valid(i).then(|| lb.value(i).to_string()),
            ));
        }
    }
    out
}

fn json_of(out: std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Issue 5: a refit on the same data keeps the ids (≥ 90% of comments stay
/// on their theme id); analysts' renames and merges survive the next refit;
/// a job started afterwards takes the new version over; theme_daily/ and the
/// themes/ snapshot are written.
#[test]
fn refit_keeps_ids_curation_survives_and_jobs_take_the_new_version() {
    let Some(data) = ready() else { return };
    let rows = jsonl(&data);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // 1,280 comments from across the 77 intents (20 batches of 64).
    let first: Vec<&serde_json::Value> = rows.iter().step_by(7).take(1280).collect();
    let a = dir.path().join("a.jsonl");
    std::fs::write(
        &a,
        first
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    ingest(&a, &out);
    let o = out.to_str().unwrap();

    let s = json_of(verbatim(&["themes", "refit", "--json", "--output-root", o]));
    let retention = s["retention"].as_f64().unwrap();
    eprintln!("refit 1: {s}");
    assert!(
        retention >= 0.9,
        "refit kept only {retention:.3} of comments on their id"
    );
    assert_eq!(s["version"], 1);
    assert!(s["themes_after"].as_u64().unwrap() > 20);

    // Curate: rename the largest theme, merge the second into it.
    let list = json_of(verbatim(&["themes", "list", "--json", "--output-root", o]));
    let (ta, tb) = (
        list[0]["id"].as_u64().unwrap(),
        list[1]["id"].as_u64().unwrap(),
    );
    let (ta_s, tb_s) = (ta.to_string(), tb.to_string());
    verbatim(&[
        "themes",
        "rename",
        &ta_s,
        "Card questions (curated)",
        "--output-root",
        o,
    ]);
    verbatim(&["themes", "merge", &ta_s, &tb_s, "--output-root", o]);

    // A second refit keeps the curation and, again, the ids.
    let s2 = json_of(verbatim(&["themes", "refit", "--json", "--output-root", o]));
    eprintln!("refit 2: {s2}");
    assert_eq!(s2["version"], 2);
    assert!(s2["retention"].as_f64().unwrap() >= 0.9, "{s2}");
    let shown =
        String::from_utf8(verbatim(&["themes", "show", &tb_s, "--output-root", o]).stdout).unwrap();
    assert!(
        shown.starts_with(&format!("theme {ta}: Card questions (curated)")),
        "merged id {tb} shows theme {ta} with the curated label: {shown}"
    );

    // A job started now takes version 2 over: the same comments again are
    // written with the refitted ids (B's id never again), A's with A's label.
    let before: HashMap<String, Option<i32>> = theme_rows(&out)
        .into_iter()
        .map(|(id, t, _)| (id, t))
        .collect();
    let again: Vec<String> = first
        .iter()
        .map(|r| serde_json::json!({"id": format!("again-{}", r["id"].as_str().unwrap()), "text": r["text"]}).to_string())
        .collect();
    let b = dir.path().join("b.jsonl");
    std::fs::write(&b, again.join("\n")).unwrap();
    ingest(&b, &out);
    let after = theme_rows(&out);
    // Version 2's theme of each original comment: where its repeat belongs.
    let v2 = assignments(&out.join("themes/assignments/v000002.parquet"));
    let (mut repeats, mut followed, mut from_b, mut in_a, mut labelled) = (0, 0, 0, 0, 0);
    for (id, theme, label) in &after {
        let Some(orig) = id.strip_prefix("again-") else {
            continue;
        };
        repeats += 1;
        followed += usize::from(theme.map(i64::from) == v2.get(orig).copied());
        if *theme == Some(ta as i32) {
            in_a += 1;
            labelled += usize::from(label.as_deref() == Some("Card questions (curated)"));
        }
        if before.get(orig).copied().flatten() == Some(tb as i32) {
            from_b += 1;
            assert_ne!(*theme, Some(tb as i32), "{id} went to the merged-away id");
        }
    }
    assert!(from_b > 5, "theme {tb} had {from_b} comments");
    // The refit's assignment uses the clustering cut, the stream the join
    // threshold and the batch: most, not all, repeats follow it (85% here).
    assert!(
        followed * 10 >= repeats * 7,
        "{followed} of {repeats} repeated comments got version 2's theme of their original"
    );
    assert!(
        in_a > 0,
        "no repeated comment joined the curated theme {ta}"
    );
    assert_eq!(labelled, in_a, "A's rows carry the curated label");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("themes/state.json")).unwrap()).unwrap();
    assert_eq!(
        state["version"], 2,
        "the job took the refitted version over"
    );

    // themes/ snapshot and theme_daily/.
    let snap = ParquetRecordBatchReaderBuilder::try_new(
        File::open(out.join("themes/themes.parquet")).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|b| b.unwrap())
    .collect::<Vec<_>>();
    let mut merged_row = false;
    for b in &snap {
        let ids = b
            .column_by_name("theme_id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .clone();
        let into = b
            .column_by_name("merged_into")
            .unwrap()
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .clone();
        for i in 0..b.num_rows() {
            if ids.value(i) == tb as i32 {
                merged_row = into.is_valid(i) && into.value(i) == ta as i32;
            }
        }
    }
    assert!(merged_row, "the snapshot maps {tb} to {ta}");
    verbatim(&["themes", "daily", "--output-root", o]);
    let daily = ParquetRecordBatchReaderBuilder::try_new(
        File::open(out.join("theme_daily/theme_daily.parquet")).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .map(|b| b.unwrap())
    .collect::<Vec<_>>();
    let total: i64 = daily
        .iter()
        .map(|b| {
            let c = b.column_by_name("comments").unwrap();
            let c = c
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap();
            c.values().iter().sum::<i64>()
        })
        .sum();
    // Each comment's theme as the report and theme_daily read it: version
    // 2's assignment for the comments it regrouped, the written id for the
    // repeats that came after it; B's either way counted under A.
    let read_as: Vec<Option<i64>> = theme_rows(&out)
        .iter()
        .map(|(id, t, _)| match v2.get(id) {
            Some(&a) => (a >= 0).then_some(a),
            None => t.map(i64::from),
        })
        .map(|t| t.map(|t| if t == tb as i64 { ta as i64 } else { t }))
        .collect();
    let themed = read_as.iter().filter(|t| t.is_some()).count() as i64;
    assert_eq!(
        total, themed,
        "theme_daily counts every comment with a theme, as the refit left it"
    );
    // The report shows the curation: A under its new label, B folded into it.
    let r = json_of(verbatim(&[
        "report",
        "--format",
        "json",
        "--output-root",
        o,
    ]));
    let top = r["themes"]["top"].as_array().unwrap();
    assert!(
        top.iter()
            .any(|t| t["id"] == ta && t["label"] == "Card questions (curated)"),
        "{top:?}"
    );
    assert!(!top.iter().any(|t| t["id"] == tb), "{top:?}");
    // ...with the refit's comments of A and B, and the repeats written
    // with A, counted under A; so for every theme on the page.
    for t in top {
        let id = t["id"].as_i64().unwrap();
        let want = read_as.iter().filter(|&&x| x == Some(id)).count() as u64;
        assert_eq!(t["count"].as_u64(), Some(want), "theme {id}: {t}");
    }
}

/// `comment_id -> theme_id` from a refit's assignments table (outliers get
/// an id of their own each).
fn assignments(path: &Path) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    for b in r {
        let b = b.unwrap();
        let ids = b.column_by_name("comment_id").unwrap().clone();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let th = b.column_by_name("theme_id").unwrap().clone();
        let th = th.as_any().downcast_ref::<Int32Array>().unwrap();
        for i in 0..b.num_rows() {
            let t = if th.is_valid(i) {
                i64::from(th.value(i))
            } else {
                -1 - out.len() as i64
            };
            out.insert(ids.value(i).to_string(), t);
        }
    }
    out
}

/// Issue 5, point 2 (stability): the same 3,000 banking77 queries streamed
/// in two different orders. A warm refit keeps ≥ 90% of comments on their
/// id; the online ids depend on the order (ARI ≈ 0.35 between orders,
/// README), and after `themes refit --from-scratch` the two models agree at
/// ARI ≥ 0.85; a further refit on the same data keeps ≥ 90% again. With
/// all-MiniLM-L6-v2, as issue 5 measured.
#[test]
fn two_orders_agree_after_a_from_scratch_refit() {
    let Some(data) = ready() else { return };
    let rows = jsonl(&data);
    let sub: Vec<&serde_json::Value> = rows.iter().skip(1).step_by(3).take(3000).collect();
    let dir = tempfile::tempdir().unwrap();
    let mini = demo_pipeline_with("all-MiniLM-L6-v2", dir.path());
    let mut maps = Vec::new();
    for seed in [3u64, 4] {
        // A seeded shuffle (Fisher-Yates over verbatim's own SplitMix).
        let mut order = sub.clone();
        let mut rng = verbatim::cli::train::Rng(seed);
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let file = dir.path().join(format!("order{seed}.jsonl"));
        let lines: Vec<String> = order
            .iter()
            .map(|r| serde_json::json!({"id": r["id"], "text": r["text"]}).to_string())
            .collect();
        std::fs::write(&file, lines.join("\n")).unwrap();
        let out = dir.path().join(format!("out{seed}"));
        ingest_with(&file, &out, &mini);
        let o = out.to_str().unwrap();
        // A warm refit of the shuffled stream keeps the ids...
        let warm = json_of(verbatim(&["themes", "refit", "--json", "--output-root", o]));
        eprintln!("order {seed}, warm refit: {warm}");
        assert!(warm["retention"].as_f64().unwrap() >= 0.9, "{warm}");
        // ...a from-scratch one makes the themes independent of the order.
        let s = json_of(verbatim(&[
            "themes",
            "refit",
            "--from-scratch",
            "--json",
            "--output-root",
            o,
        ]));
        eprintln!("order {seed}, from scratch: {s}");
        assert!(s["themes_after"].as_u64().unwrap() <= 154, "{s}");
        maps.push(assignments(&out.join("themes/assignments/v000002.parquet")));
        let again = json_of(verbatim(&["themes", "refit", "--json", "--output-root", o]));
        eprintln!("order {seed}, refit again: {again}");
        assert!(again["retention"].as_f64().unwrap() >= 0.9, "{again}");
    }
    let ids: Vec<&String> = maps[0]
        .keys()
        .filter(|k| maps[1].contains_key(*k))
        .collect();
    assert!(ids.len() > 2900, "{}", ids.len());
    let a: Vec<i64> = ids.iter().map(|k| maps[0][*k]).collect();
    let b: Vec<i64> = ids.iter().map(|k| maps[1][*k]).collect();
    let agreement = verbatim::themes::eval::agreement(&a, &b);
    eprintln!(
        "two orders after a from-scratch refit: ARI {:.3}, NMI {:.3}",
        agreement.ari, agreement.nmi
    );
    assert!(
        agreement.ari >= 0.85,
        "ARI {:.3} between the two orders",
        agreement.ari
    );
}

/// Issue 12, done-when 3: the default multilingual model, through its theme
/// projection and calibrated thresholds, themes banking77 in shuffled
/// orders within 0.01 NMI of all-MiniLM-L6-v2 (same orders, same run).
#[test]
fn the_default_model_themes_as_well_as_minilm_in_shuffled_orders() {
    let Some(data) = ready() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mini = demo_pipeline_with("all-MiniLM-L6-v2", dir.path());
    let mut nmi = Vec::new();
    for pipeline in [mini, comment_demo_file(dir.path())] {
        let out = verbatim(&[
            "eval-themes",
            "--json",
            "--shuffle",
            "1,2,3",
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--input",
            data.to_str().unwrap(),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let runs = v["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3, "{v}");
        let mean = runs.iter().map(|r| r["nmi"].as_f64().unwrap()).sum::<f64>() / 3.0;
        eprintln!(
            "{}: mean NMI {mean:.3} over 3 orders: {v}",
            pipeline.display()
        );
        nmi.push(mean);
    }
    assert!(
        nmi[1] >= nmi[0] - 0.01,
        "e5 {:.3}, MiniLM {:.3}",
        nmi[1],
        nmi[0]
    );
}

/// Issue 12: with multilingual-e5-small a question and its Russian
/// paraphrase land in one theme. Three banking77 intents stream in English
/// (446 questions, so the themes are formed); then six of those questions
/// again, each followed by its Russian paraphrase. The online model splits
/// an intent into several themes (6 here for 3 intents), and which of an
/// intent's themes a sentence is nearest moves with the int8 vectors: so
/// every Russian paraphrase must land in its original's theme or in one
/// whose English members are mostly its original's intent, and at least
/// five of the six pairs in the very same theme (measured: five; the sixth,
/// "my card has been found …", went to the other card-linking theme, cosine
/// 0.66 against the original's 0.81).
#[test]
fn a_russian_paraphrase_lands_in_the_theme_of_its_english_original() {
    let Some(data) = ready() else { return };
    if !root()
        .join(".cache/models/multilingual-e5-small/model.int8.onnx")
        .is_file()
    {
        assert!(!required(), "run `bash models/setup.sh`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let intents = ["card_arrival", "card_linking", "exchange_rate"];
    let mut lines: Vec<String> = jsonl(&data)
        .into_iter()
        .filter(|r| intents.contains(&r["label"].as_str().unwrap()))
        .map(|r| r.to_string())
        .collect();
    assert!(lines.len() > 400);
    let pairs = [
        (
            "I am still waiting on my card?",
            "Я всё ещё жду свою карту?",
        ),
        (
            "What can I do if my card still hasn't arrived after 2 weeks?",
            "Что делать, если карта так и не пришла через две недели?",
        ),
        (
            "My card has been found. Is there any way for me to put it back into the app?",
            "Моя карта нашлась. Можно ли снова добавить её в приложение?",
        ),
        (
            "how do I get my card to show in the app?",
            "Как сделать, чтобы моя карта отображалась в приложении?",
        ),
        (
            "What is my money worth in other countries?",
            "Сколько стоят мои деньги в других странах?",
        ),
        (
            "Do you know the rate of exchange?",
            "Вы знаете обменный курс?",
        ),
    ];
    for (i, (en, ru)) in pairs.iter().enumerate() {
        lines.push(serde_json::json!({"id": format!("en-{i}"), "text": en}).to_string());
        lines.push(serde_json::json!({"id": format!("ru-{i}"), "text": ru}).to_string());
    }
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let demo = comment_demo();
    let pipeline = dir.path().join("e5.toml");
    let e5: Vec<&str> = demo
        .lines()
        .map(|l| {
            if l.starts_with("model = ") {
                "model = \"multilingual-e5-small\""
            } else {
                l
            }
        })
        .collect();
    std::fs::write(&pipeline, e5.join("\n")).unwrap();
    let out = dir.path().join("out");
    ingest_with(&file, &out, &pipeline);
    let theme = themes_by_id(&out);
    // Each theme's majority intent, from the English banking77 rows in it.
    let label: HashMap<String, String> = jsonl(&data)
        .into_iter()
        .filter(|r| intents.contains(&r["label"].as_str().unwrap()))
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut votes: HashMap<i32, HashMap<&str, usize>> = HashMap::new();
    for (id, t) in &theme {
        if let Some(l) = label.get(id) {
            *votes.entry(*t).or_default().entry(l.as_str()).or_default() += 1;
        }
    }
    let majority = |t: i32| -> Option<&str> {
        votes
            .get(&t)?
            .iter()
            .max_by_key(|(l, n)| (**n, std::cmp::Reverse(**l)))
            .map(|(l, _)| *l)
    };
    let expected = [
        "card_arrival",
        "card_arrival",
        "card_linking",
        "card_linking",
        "exchange_rate",
        "exchange_rate",
    ];
    let mut same = 0;
    for (i, (en, ru)) in pairs.iter().enumerate() {
        let a = *theme
            .get(&format!("en-{i}"))
            .unwrap_or_else(|| panic!("{en:?} has no theme"));
        let b = *theme
            .get(&format!("ru-{i}"))
            .unwrap_or_else(|| panic!("{ru:?} has no theme"));
        if a == b {
            same += 1;
            continue;
        }
        assert_eq!(majority(a), Some(expected[i]), "{en:?}: theme {a}");
        assert_eq!(
            majority(b),
            Some(expected[i]),
            "{ru:?}: theme {b} (its original: {a})"
        );
    }
    assert!(same >= 5, "only {same} of 6 pairs share a theme: {theme:?}");
}

/// `eval-themes --shuffle/--join-similarity/--cluster-distance/--refit-distance`:
/// every setting in every order on one set of embeddings; the same seed
/// gives the same order, so the same scores.
#[test]
fn eval_themes_sweeps_thresholds_over_shuffled_orders() {
    let Some(data) = ready() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Eight intents (the file is sorted by intent).
    let rows: Vec<String> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .take(1000)
        .map(str::to_string)
        .collect();
    let file = dir.path().join("b.jsonl");
    std::fs::write(&file, rows.join("\n")).unwrap();
    let out = verbatim(&[
        "eval-themes",
        "--json",
        "--input",
        file.to_str().unwrap(),
        "--shuffle",
        "1,2,1",
        "--join-similarity",
        "0.75,0.8",
        "--cluster-distance",
        "0.65",
        "--refit-distance",
        "0.45",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{v}");
    assert_eq!(v["n"], 1000);
    let settings = v["settings"].as_array().unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(settings.len(), 2);
    assert_eq!(runs.len(), 6);
    assert_eq!(v["refit"].as_array().unwrap().len(), 1);
    for r in runs.chunks(3) {
        assert_eq!(r[0]["shuffle"], 1);
        // Same seed, same order: the same themes (NMI sums a hash map, so
        // only to the last bit).
        let nmi = |x: &serde_json::Value| x["nmi"].as_f64().unwrap();
        assert!((nmi(&r[0]) - nmi(&r[2])).abs() < 1e-12, "{} {}", r[0], r[2]);
        assert_eq!(r[0]["themes"], r[2]["themes"]);
        assert!(r[1]["nmi"].as_f64().unwrap() > 0.3, "{}", r[1]);
    }
    assert!((settings[0]["join_similarity"].as_f64().unwrap() - 0.75).abs() < 1e-6);
    let bad = support::verbatim()
        .args([
            "eval-themes",
            "--input",
            file.to_str().unwrap(),
            "--join-similarity",
            "1.5",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(e.contains("themes.join_similarity"), "{e}");
}

/// Issue 15's measurement: M-ABSA's laptop dev set, English and its
/// Russian translation, scored at the clause level (rows with one aspect,
/// labelled by their category; the rest skipped) with the share of
/// translation pairs that land in one theme, as streamed and settled.
#[test]
fn eval_themes_scores_one_aspect_rows_and_translation_pairs() {
    let Some(_) = ready() else { return };
    let labelled = root().join("../shared/data/labelled");
    let (en, ru) = (
        labelled.join("mabsa_laptop_en_dev.jsonl"),
        labelled.join("mabsa_laptop_ru_dev.jsonl"),
    );
    let one_aspect = |p: &Path| {
        jsonl(p)
            .iter()
            .filter(|r| r["aspects"].as_array().is_some_and(|a| a.len() == 1))
            .count()
    };
    let (n_en, n_ru) = (one_aspect(&en), one_aspect(&ru));
    let v = json_of(verbatim(&[
        "eval-themes",
        "--json",
        "--input",
        en.to_str().unwrap(),
        "--translations",
        ru.to_str().unwrap(),
    ]));
    eprintln!("{v}");
    assert_eq!(v["n"].as_u64().unwrap() as usize, n_en + n_ru);
    assert_eq!(
        v["skipped"].as_u64().unwrap() as usize,
        jsonl(&en).len() + jsonl(&ru).len() - n_en - n_ru
    );
    let pairs = v["pairs"].as_u64().unwrap() as usize;
    assert!(pairs > 250 && pairs <= n_en.min(n_ru), "{pairs} pairs");
    let share = |k: &str| v[k].as_f64().unwrap();
    for k in ["pairs_same_theme", "settled_pairs_same_theme"] {
        assert!((0.0..=1.0).contains(&share(k)), "{k}");
    }
    // The encoder puts a sentence and its translation close enough that,
    // once the themes exist, most pairs share one (0.73 measured).
    assert!(
        share("settled_pairs_same_theme") >= 0.5,
        "cross-language alignment fell: {v}"
    );
    assert!(v["settled"]["nmi"].as_f64().unwrap() > 0.3);
}

mod common;
use common::s3;

/// Issue 14: themes on a bucket are the themes on a folder. The same
/// comments go through the job into a folder and into an S3 bucket (moto on
/// loopback); then the same refit, rename, merge, `daily`, report and a
/// second job run on each. Every answer is the same, and the bucket's files,
/// read back with boto3 (not verbatim's client), hold the same rows, the
/// same theme state and the same snapshot.
#[test]
fn themes_on_a_bucket_are_the_themes_on_a_folder() {
    let Some(data) = ready() else { return };
    let rows = jsonl(&data);
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = s3::S3Server::start(dir.path()) else {
        return;
    };
    // A bucket of this run's own: offline commands cache a bucket's tables
    // in a temp folder named after its URL.
    let bucket = format!("themes{}", std::process::id());
    server.create_bucket(&bucket);
    let url = format!("s3://{bucket}/lake");
    let folder = dir.path().join("folder");
    let folder_s = folder.to_str().unwrap().to_string();
    let pipe = dir.path().join("demo-s3.toml");
    std::fs::write(
        &pipe,
        format!("{}\n{}", comment_demo(), server.storage_toml()),
    )
    .unwrap();
    // The folder's pipeline and the bucket's (with its [output.storage]).
    let demo = comment_demo_file(dir.path());
    let pipes = [demo.to_str().unwrap(), pipe.to_str().unwrap()];
    // 640 comments from across the intents (10 batches of 64) over ten
    // days, then 320 of them again under new ids (event times fixed, so
    // the two runs' reports can be compared).
    let at = |i: usize| format!("2026-11-{:02}T09:{:02}:00Z", 10 + i % 10, i % 60);
    let first: Vec<String> = rows
        .iter()
        .step_by(11)
        .take(640)
        .enumerate()
        .map(|(i, r)| {
            serde_json::json!({"id": r["id"], "text": r["text"], "created_at": at(i)}).to_string()
        })
        .collect();
    let again: Vec<String> = rows
        .iter()
        .step_by(22)
        .take(320)
        .enumerate()
        .map(|(i, r)| serde_json::json!({"id": format!("again-{}", r["id"].as_str().unwrap()), "text": r["text"], "created_at": at(i)}).to_string())
        .collect();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&a, first.join("\n")).unwrap();
    std::fs::write(&b, again.join("\n")).unwrap();
    let roots = [folder_s.as_str(), url.as_str()];
    let on_both = |args: &[&str]| -> Vec<std::process::Output> {
        roots
            .iter()
            .zip(pipes)
            .map(|(r, p)| {
                let mut v = args.to_vec();
                v.extend(["--pipeline", p, "--output-root", r]);
                verbatim(&v)
            })
            .collect()
    };
    // The bucket as boto3 sees it, in a fresh folder each time (the theme
    // files are rewritten under their names).
    let mirrors = std::cell::Cell::new(0);
    let mirror = || {
        mirrors.set(mirrors.get() + 1);
        let m = dir.path().join(format!("mirror{}", mirrors.get()));
        assert!(server.mirror(&bucket, "lake", &m) > 0);
        m
    };
    let sorted_rows = |d: &Path| {
        let mut v = theme_rows(d);
        v.sort();
        v
    };
    let same_files = |m: &Path, rels: &[&str]| {
        for rel in rels {
            let (x, y) = (
                std::fs::read(folder.join(rel)).unwrap(),
                std::fs::read(m.join(rel)).unwrap(),
            );
            if rel.ends_with(".json") {
                // Term counts are a hash map: compare the values, not the order.
                let v = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
                assert_eq!(
                    v(&x),
                    v(&y),
                    "{rel} differs between the folder and the bucket"
                );
            } else {
                assert_eq!(x, y, "{rel} differs between the folder and the bucket");
            }
        }
    };

    for out in on_both(&["ingest", a.to_str().unwrap()]) {
        assert!(out.status.success());
    }
    let m = mirror();
    let rows_folder = sorted_rows(&folder);
    assert_eq!(rows_folder.len(), 640);
    assert!(rows_folder.iter().filter(|r| r.1.is_some()).count() > 500);
    let rows_bucket = sorted_rows(&m);
    let differ: Vec<_> = rows_folder
        .iter()
        .zip(&rows_bucket)
        .filter(|(a, b)| a != b)
        .collect();
    assert!(
        differ.is_empty(),
        "{} rows differ on the bucket, e.g. {:?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
    assert_eq!(rows_folder.len(), rows_bucket.len());
    same_files(&m, &["themes/state.json", "themes/themes.parquet"]);

    let listed: Vec<_> = on_both(&["themes", "list", "--json"])
        .into_iter()
        .map(json_of)
        .collect();
    assert_eq!(listed[0], listed[1]);
    let refits: Vec<serde_json::Value> = on_both(&["themes", "refit", "--json"])
        .into_iter()
        .map(|o| {
            let mut v = json_of(o);
            v["path"] = serde_json::Value::Null;
            v
        })
        .collect();
    assert_eq!(refits[0], refits[1]);
    assert_eq!(refits[0]["version"], 1);
    // The two largest themes after the refit (which may have merged two
    // of the themes listed before it).
    let refitted: Vec<_> = on_both(&["themes", "list", "--json"])
        .into_iter()
        .map(json_of)
        .collect();
    assert_eq!(refitted[0], refitted[1]);
    let (ta, tb) = (
        refitted[0][0]["id"].as_u64().unwrap().to_string(),
        refitted[0][1]["id"].as_u64().unwrap().to_string(),
    );
    on_both(&["themes", "rename", &ta, "Card questions (curated)"]);
    let shown: Vec<_> = on_both(&["themes", "merge", &ta, &tb])
        .into_iter()
        .map(|o| String::from_utf8(o.stdout).unwrap())
        .collect();
    assert_eq!(shown[0], shown[1]);
    assert!(
        shown[0].starts_with(&format!("theme {ta}: Card questions (curated)")),
        "{}",
        shown[0]
    );
    let daily: Vec<_> = on_both(&["themes", "daily"])
        .into_iter()
        .map(|o| String::from_utf8(o.stdout).unwrap())
        .collect();
    assert_eq!(daily[1], daily[0].replace(&folder_s, &url));
    assert!(daily[0].starts_with("wrote "), "{}", daily[0]);
    // One moment for both, so no age crosses an hour between the two runs.
    let as_of = chrono::Utc::now().to_rfc3339();
    let reports: Vec<serde_json::Value> = on_both(&[
        "report",
        "--format",
        "json",
        "--as-of",
        &as_of,
        // An analyst's label stands in every language.
        "--language",
        "ru",
    ])
    .into_iter()
    .map(|o| {
        let mut v = json_of(o);
        for k in ["generated_at", "output_root"] {
            v[k] = serde_json::Value::Null;
        }
        v["answered"]["as_of"] = serde_json::Value::Null;
        v
    })
    .collect();
    let diffs = json_diffs(&reports[0], &reports[1]);
    assert!(diffs.is_empty(), "the reports differ: {diffs:?}");
    let top = reports[0]["themes"]["top"].as_array().unwrap();
    assert!(
        top.iter()
            .any(|t| t["id"] == refitted[0][0]["id"] && t["label"] == "Card questions (curated)"),
        "the report shows the curation: {top:?}"
    );

    // A second job takes version 1 and the curation over on each.
    for out in on_both(&["ingest", b.to_str().unwrap()]) {
        assert!(out.status.success());
    }
    let m = mirror();
    let rows_folder = sorted_rows(&folder);
    assert_eq!(rows_folder.len(), 960);
    assert_eq!(rows_folder, sorted_rows(&m));
    assert!(
        rows_folder.iter().any(
            |r| r.0.starts_with("again-") && r.2.as_deref() == Some("Card questions (curated)")
        ),
        "the second job wrote the curated label"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.join("themes/state.json")).unwrap()).unwrap();
    assert_eq!(
        state["version"], 1,
        "the job on the bucket took version 1 over"
    );
    same_files(
        &m,
        &[
            "themes/state.json",
            "themes/themes.parquet",
            "themes/curation.json",
            "themes/versions/v000001.json",
            "themes/assignments/v000001.parquet",
            "theme_daily/theme_daily.parquet",
        ],
    );
}

/// The paths where two JSON values differ (the first 10), with both sides.
fn json_diffs(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, at: String, out: &mut Vec<String>) {
        use serde_json::Value::{Array, Object};
        match (a, b) {
            _ if out.len() >= 10 => {}
            (Object(x), Object(y)) => {
                for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                    let n = serde_json::Value::Null;
                    walk(
                        x.get(k).unwrap_or(&n),
                        y.get(k).unwrap_or(&n),
                        format!("{at}.{k}"),
                        out,
                    );
                }
            }
            (Array(x), Array(y)) if x.len() == y.len() => {
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    walk(p, q, format!("{at}[{i}]"), out);
                }
            }
            _ if a != b => out.push(format!("{at}: {a} vs {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(a, b, String::new(), &mut out);
    out
}

/// Issue 15, themes per clause within a target: with `themes.unit =
/// "mention"`, each mention is themed among its target's themes, so the
/// praised engineer and the crashing app of one comment land in two themes,
/// in English and Russian. Read back with DuckDB, not verbatim's reader:
/// every theme id holds one target across `mentions/`; `comments.theme_ids`
/// lists the comment's mention themes; `comments.theme_id` is the strongest
/// complaint's; `themes.parquet` carries the target; a refit keeps it.
#[test]
fn mention_themes_keep_praise_and_complaint_apart() {
    if ready().is_none() {
        return;
    }
    let Some(python) = support::python_with("duckdb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The demo themes mentions.
    let pipeline = root().join("pipelines/demo.toml");
    let praise_en = [
        "The engineer was great",
        "The engineer was really helpful",
        "Our engineer was polite and quick",
        "The engineer who came was lovely",
    ];
    let crash_en = [
        "the app keeps crashing",
        "the app crashes every time I open it",
        "your app freezes and crashes",
        "the app crashed again today",
    ];
    let praise_ru = [
        "Мастер был замечательный",
        "Мастер очень помог",
        "Мастер был вежлив и быстр",
    ];
    let crash_ru = [
        "приложение постоянно вылетает",
        "приложение падает каждый раз при запуске",
        "ваше приложение зависает и вылетает",
    ];
    let mut lines = Vec::new();
    for (i, p) in praise_en.iter().enumerate() {
        for c in crash_en {
            lines.push(format!("{p}, but {c}."));
        }
        lines.push(format!("{}.", crash_en[i]).replacen('t', "T", 1));
    }
    for p in praise_ru {
        for c in crash_ru {
            lines.push(format!("{p}, но {c}."));
        }
    }
    let file = dir.path().join("mixed.jsonl");
    std::fs::write(
        &file,
        lines
            .iter()
            .enumerate()
            .map(|(i, t)| serde_json::json!({"id": format!("c{i:02}"), "text": t}).to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let out = dir.path().join("out");
    ingest_with(&file, &out, &pipeline);
    verbatim(&["themes", "refit", "--output-root", out.to_str().unwrap()]);
    let script = r#"
import json, sys, duckdb
root = sys.argv[1]
def rows(sql):
    r = duckdb.sql(sql)
    return [dict(zip(r.columns, x)) for x in r.fetchall()]
m = rows(f"select comment_id, target, polarity, confidence, span_start, theme_id, len(embedding) as dim from read_parquet('{root}/mentions/**/*.parquet')")
c = rows(f"select id, language, theme_id, theme_ids from read_parquet('{root}/comments/**/*.parquet')")
t = rows(f"select theme_id, target, comments, label, keywords, map_keys(label_by_language) as langs, map_values(label_by_language) as by_lang from read_parquet('{root}/themes/themes.parquet')")
print(json.dumps({"mentions": m, "comments": c, "themes": t}))
"#;
    let got = run_ok(
        std::process::Command::new(&python)
            .args(["-c", script])
            .arg(&out),
    );
    let v: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    let mentions = v["mentions"].as_array().unwrap();
    let comments = v["comments"].as_array().unwrap();
    assert_eq!(comments.len(), lines.len());
    // Every mention has its clause vector; a theme holds one target.
    let mut target_of: HashMap<i64, String> = HashMap::new();
    for m in mentions {
        assert_eq!(m["dim"], 384, "{m}");
        if let Some(id) = m["theme_id"].as_i64() {
            let t = m["target"].as_str().unwrap().to_string();
            let old = target_of.insert(id, t.clone());
            assert!(
                old.is_none() || old.as_ref() == Some(&t),
                "theme {id}: {old:?} and {t}"
            );
        }
    }
    // The snapshot, after the refit, says the same targets.
    for t in v["themes"].as_array().unwrap() {
        if let (Some(id), Some(target)) = (t["theme_id"].as_i64(), t["target"].as_str()) {
            if let Some(seen) = target_of.get(&id) {
                assert_eq!(seen, target, "theme {id}");
            }
        }
    }
    // Comments: theme_ids are their mentions' themes; theme_id the strongest
    // complaint's (else the strongest mention's).
    let mut apart = HashMap::<&str, usize>::new();
    for c in comments {
        let id = c["id"].as_str().unwrap();
        let mut own: Vec<&serde_json::Value> = mentions
            .iter()
            .filter(|m| m["comment_id"] == c["id"] && m["theme_id"].is_i64())
            .collect();
        own.sort_by_key(|m| {
            (
                m["span_start"].as_i64(),
                m["target"].as_str().map(String::from),
            )
        });
        let listed: Vec<i64> = c["theme_ids"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_i64().unwrap()).collect())
            .unwrap_or_default();
        let mut expect: Vec<i64> = own
            .iter()
            .map(|m| m["theme_id"].as_i64().unwrap())
            .collect();
        let mut sorted = listed.clone();
        sorted.sort();
        expect.sort();
        assert_eq!(sorted, expect, "{id}");
        if own.is_empty() {
            continue;
        }
        let primary = own
            .iter()
            .max_by(|a, b| {
                let neg = |m: &serde_json::Value| m["polarity"] == "negative";
                neg(a).cmp(&neg(b)).then(
                    a["confidence"]
                        .as_f64()
                        .unwrap()
                        .total_cmp(&b["confidence"].as_f64().unwrap()),
                )
            })
            .unwrap();
        assert_eq!(c["theme_id"], primary["theme_id"], "{id}: primary theme");
        let staff = own.iter().find(|m| m["target"] == "staff");
        let product = own
            .iter()
            .find(|m| m["target"] == "product" && m["polarity"] == "negative");
        if let (Some(s), Some(p)) = (staff, product) {
            assert_ne!(s["theme_id"], p["theme_id"], "{id}");
            assert_eq!(
                c["theme_id"], p["theme_id"],
                "{id}: the complaint is primary"
            );
            *apart.entry(c["language"].as_str().unwrap()).or_default() += 1;
        }
    }
    eprintln!("comments with staff and product complaint themed apart: {apart:?}");
    assert!(apart.get("en").copied().unwrap_or(0) >= 8, "{apart:?}");
    assert!(apart.get("ru").copied().unwrap_or(0) >= 4, "{apart:?}");
    // Labels, read back by DuckDB: phrases from the theme's own clauses, in
    // each language a theme's clauses use.
    let language: HashMap<&str, &str> = comments
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["language"].as_str().unwrap()))
        .collect();
    let words = |t: &serde_json::Value| -> String {
        let mut all = vec![t["label"].as_str().unwrap_or("").to_lowercase()];
        all.extend(
            t["by_lang"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_lowercase)),
        );
        all.join(" | ")
    };
    eprintln!("themes: {}", v["themes"]);
    let mut read = HashMap::<&str, usize>::new();
    for t in v["themes"].as_array().unwrap() {
        let id = t["theme_id"].as_i64().unwrap();
        let held: Vec<&str> = mentions
            .iter()
            .filter(|m| m["theme_id"].as_i64() == Some(id))
            .map(|m| language[m["comment_id"].as_str().unwrap()])
            .collect();
        if held.len() < 3 {
            continue;
        }
        let label = t["label"].as_str().unwrap();
        assert!(
            !label.is_empty() && !label.contains(", "),
            "theme {id}: {t}"
        );
        assert!(
            t["keywords"].as_array().is_some_and(|k| k.len() <= 3),
            "{t}"
        );
        let target = t["target"].as_str().unwrap_or("");
        let about = words(t);
        let fits = match target {
            "staff" => ["engineer", "мастер"].iter().any(|w| about.contains(w)),
            "product" => [
                "app",
                "crash",
                "freez",
                "приложени",
                "вылета",
                "пада",
                "завис",
            ]
            .iter()
            .any(|w| about.contains(w)),
            _ => true,
        };
        assert!(fits, "theme {id} ({target}) is labelled {about:?}");
        *read.entry(target).or_default() += usize::from(fits);
        // A theme whose clauses are a fifth or more in each language is
        // labelled in each.
        let ru = held.iter().filter(|l| **l == "ru").count();
        let en = held.len() - ru;
        let langs: Vec<&str> = t["langs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .collect();
        if ru >= 2 && en >= 2 && 5 * ru.min(en) >= held.len() {
            assert_eq!(langs, ["en", "ru"], "theme {id}: {en} en, {ru} ru: {t}");
        }
    }
    assert!(
        read.get("staff").is_some_and(|&n| n > 0) && read.get("product").is_some_and(|&n| n > 0),
        "{read:?}"
    );
}

/// Issue 15, point 4: the demo sample's top 10 product and top 10 staff
/// themes (label, keywords, 3 exemplars), as `themes list --target product
/// --target staff --top 10 --exemplars 3` prints them after the sample is
/// ingested in file order with `pipelines/demo.toml` (the demo's own run
/// reads three partitions in whatever order they arrive; a file in one
/// order is the same every time). The snapshot in
/// `tests/snapshots/demo_top_themes.txt` was reviewed by eye (the closing
/// note of the session that made it says what it shows);
/// `VERBATIM_UPDATE_SNAPSHOTS=1` rewrites it. Where this machine's int8
/// vectors are not the maker's ([`support::int8_matches_committed`]: AVX2
/// alone, or another CPU's kernels) they differ in the last digits and borderline clauses
/// may join other themes: there the listing must still have both targets'
/// themes, each with its exemplars, and the diff is printed.
#[test]
fn demo_top_product_and_staff_themes_match_the_reviewed_snapshot() {
    if ready().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ingest_with(
        &root().join("src/cli/demo_feedback.jsonl"),
        &out,
        &root().join("pipelines/demo.toml"),
    );
    let listed = verbatim(&[
        "themes",
        "list",
        "--output-root",
        out.to_str().unwrap(),
        "--target",
        "product",
        "--target",
        "staff",
        "--top",
        "10",
        "--exemplars",
        "3",
    ]);
    let got = String::from_utf8(listed.stdout).unwrap();
    let snapshot = root().join("tests/snapshots/demo_top_themes.txt");
    if std::env::var_os("VERBATIM_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
        std::fs::write(&snapshot, &got).unwrap();
    }
    let want = std::fs::read_to_string(&snapshot).unwrap();
    if support::int8_matches_committed("multilingual-e5-small") {
        assert_eq!(
            got, want,
            "the demo's top themes changed: review them and rerun with VERBATIM_UPDATE_SNAPSHOTS=1"
        );
        return;
    }
    eprintln!("int8 vectors differ here; snapshot:\n{want}\nthis run:\n{got}");
    // Theme lines start with their id; exemplar lines with "- ".
    let themes: Vec<&str> = got
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    for target in ["product", "staff"] {
        let n = themes
            .iter()
            .filter(|l| l.split_whitespace().nth(2) == Some(target))
            .count();
        assert!(n >= 5, "{target}: {n} themes\n{got}");
    }
    let exemplars = got
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .count();
    assert!(exemplars >= 2 * themes.len(), "{got}");
}

/// Majority-intent share of the comments written with each theme id,
/// weighted by size, over the comments that have a theme.
fn purity(
    written: &[(String, Option<i32>, Option<String>)],
    intent: &HashMap<String, String>,
) -> f64 {
    let mut by: HashMap<i32, HashMap<&str, usize>> = HashMap::new();
    for (id, theme, _) in written {
        if let (Some(t), Some(label)) = (theme, intent.get(id)) {
            *by.entry(*t).or_default().entry(label).or_default() += 1;
        }
    }
    let total: usize = by.values().flat_map(|m| m.values()).sum();
    let top: usize = by
        .values()
        .map(|m| m.values().max().copied().unwrap_or(0))
        .sum();
    top as f64 / total.max(1) as f64
}

/// Comments under `dir` whose vector sits far from the final centroid of
/// the theme they were written with (cosine more than 0.25 below the
/// similarity they were written with), and the comments with a theme. An
/// id two instances gave to two subjects shows here: the state keeps one
/// of the two centroids.
fn far_from_their_theme(dir: &Path) -> (usize, usize) {
    use arrow::array::{AsArray, Float32Array};
    use arrow::datatypes::Float32Type;
    let model = verbatim::themes::online::ThemeModel::from_json(
        &std::fs::read(dir.join("themes/state.json")).unwrap(),
    )
    .unwrap();
    let centroid: HashMap<i32, Vec<f32>> = model
        .themes()
        .iter()
        .map(|t| {
            let n = t.sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
            (t.id as i32, t.sum.iter().map(|x| x / n).collect())
        })
        .collect();
    let (mut far, mut themed) = (0, 0);
    for b in comment_batches(dir) {
        let th = b.column_by_name("theme_id").unwrap();
        let th = th.as_any().downcast_ref::<Int32Array>().unwrap();
        let sim = b.column_by_name("theme_similarity").unwrap();
        let sim = sim.as_any().downcast_ref::<Float32Array>().unwrap();
        let emb = b
            .column_by_name("embedding")
            .unwrap()
            .as_fixed_size_list()
            .clone();
        for i in 0..b.num_rows() {
            if th.is_null(i) || emb.is_null(i) {
                continue;
            }
            themed += 1;
            let v = emb.value(i);
            let v = v.as_primitive::<Float32Type>().values();
            let cos = centroid
                .get(&th.value(i))
                .map_or(-1.0, |c| c.iter().zip(v).map(|(a, b)| a * b).sum::<f32>());
            far += usize::from(cos < sim.value(i) - 0.25);
        }
    }
    (far, themed)
}

/// Two instances of one consumer group on one output root (librdkafka's
/// mock cluster, 3 partitions, MiniLM) theme the comments of their own
/// partitions. No theme id may mean two things: each written id is in the
/// snapshot, ids come from blocks the instances claimed, each id's
/// comments sit near its final centroid, and the themes are about as pure
/// (one banking77 intent per id) as one instance's on the same comments.
/// Before ids were claimed, both instances called their first theme 1:
/// run that way (three runs) this test read 123-168 of 1,251 comments far
/// from their theme (none alone) and intent purity 0.55-0.60 (0.68 alone);
/// once one instance also failed writing state.json, a temporary file name
/// both used (`write_atomic` now names each write's own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_of_a_group_share_one_set_of_theme_ids() {
    use std::sync::Arc;
    use verbatim::metrics::Metrics;
    use verbatim::pipeline::PipelineBuilder;
    use verbatim::source::kafka_mock::MockKafka;

    let Some(data) = ready() else { return };
    let Some(nlp) = common::nlp_config() else {
        return;
    };
    // 1,232 queries over all 77 intents (the file is sorted by intent).
    let rows: Vec<serde_json::Value> = jsonl(&data).into_iter().step_by(8).collect();
    let intent: HashMap<String, String> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["label"].to_string(),
            )
        })
        .collect();
    let sent: Vec<common::Sent> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = r["id"].as_str().unwrap().to_string();
            let v = serde_json::json!({"id": id, "text": r["text"], "created_at": "2026-10-01T12:00:00Z"});
            common::Sent::good((i % 3) as i32, id, &v)
        })
        .collect();
    let n = sent.len() as u64;
    let limit = std::time::Duration::from_secs(180);
    let mock = MockKafka::start(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = |topic: &str, group: &str, root: &Path| {
        let mut c = common::config(mock.bootstrap_servers(), topic, group, root);
        c.nlp = Some(nlp.clone());
        c
    };

    // One instance alone: the baseline.
    mock.create_topic("one", 3).unwrap();
    common::produce(mock.bootstrap_servers(), "one", &sent).await;
    let alone = dir.path().join("alone");
    common::run_until(cfg("one", "g-one", &alone), n).await;

    // Two instances: A starts, B joins, the second half arrives while both
    // are members.
    mock.create_topic("two", 3).unwrap();
    let shared = dir.path().join("shared");
    let half = sent.len() / 2;
    common::produce(mock.bootstrap_servers(), "two", &sent[..half]).await;
    let (ma, mb) = (Metrics::new(), Metrics::new());
    let total = {
        let (a, b) = (ma.messages.clone(), mb.messages.clone());
        Arc::new(move || a.get() + b.get())
    };
    let done = || {
        let total = total.clone();
        async move { common::wait_for(limit, "both instances to finish", || total() >= n).await }
    };
    let a = tokio::spawn(
        PipelineBuilder::new(cfg("two", "g-two", &shared))
            .metrics(ma.clone())
            .run_kafka(done()),
    );
    common::wait_for(limit, "A to start", || ma.messages.get() > 0).await;
    let b = tokio::spawn(
        PipelineBuilder::new(cfg("two", "g-two", &shared))
            .metrics(mb.clone())
            .run_kafka(done()),
    );
    common::wait_for(limit, "B to be assigned partitions", || {
        mb.assigned_partitions.get() > 0
    })
    .await;
    common::produce(mock.bootstrap_servers(), "two", &sent[half..]).await;
    let (sa, sb) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(
        sa.comments > 0 && sb.comments > 0,
        "both instances wrote comments"
    );

    let written = theme_rows(&shared);
    assert_eq!(written.len(), sent.len());
    // Every id written is a theme of the snapshot both instances saved into.
    let snap = verbatim::themes::store::snapshot_themes(
        &std::fs::read(shared.join("themes/themes.parquet")).unwrap(),
    );
    let ids: std::collections::BTreeSet<i32> = written.iter().filter_map(|w| w.1).collect();
    for id in &ids {
        assert!(
            snap.contains_key(id),
            "theme {id} was written but is in no snapshot"
        );
    }
    // Ids come from claimed blocks, one per instance at least.
    let claims: Vec<serde_json::Value> = std::fs::read_dir(shared.join("themes/ids"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            p.is_file()
                .then(|| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        })
        .collect();
    assert!(claims.len() >= 2, "{claims:?}");
    for id in &ids {
        let id = *id as u64;
        assert!(
            claims
                .iter()
                .any(|c| c["first"].as_u64().unwrap() <= id && id < c["end"].as_u64().unwrap()),
            "theme {id} is in no claimed block"
        );
    }
    // Each id's comments sit near that id's centroid, as with one instance.
    let (far_two, n_two) = far_from_their_theme(&shared);
    let (far_one, n_one) = far_from_their_theme(&alone);
    let (p_alone, p_two) = (
        purity(&theme_rows(&alone), &intent),
        purity(&written, &intent),
    );
    eprintln!(
        "far from their theme: one instance {far_one} of {n_one}, two {far_two} of {n_two}; \
         intent purity {p_alone:.3} and {p_two:.3}; {} themes",
        ids.len()
    );
    assert!(
        far_two <= far_one + n_two / 50,
        "{far_two} of {n_two} comments sit far from the theme they were written with \
         ({far_one} of {n_one} with one instance): an id means two things"
    );
    assert!(
        p_two >= p_alone - 0.08,
        "two instances' themes mix intents ({p_two:.3} against {p_alone:.3} alone)"
    );
}
