//! Comment analysis with the committed heads: the staff/product split on
//! the brief's own example, clause spans, Russian comments left null with a
//! reason, the MAMS validation scores, int8 against fp32, and that the
//! committed heads are exactly what `verbatim train` makes.
//!
//! Needs `bash models/setup.sh` (and ../shared/data for the data-backed
//! tests); without it the tests skip, unless `VERBATIM_REQUIRE_SETUP=1`
//! (set by .ci/test.sh), where they fail.

use std::path::{Path, PathBuf};

use chrono::Utc;
use verbatim::batch::CommentBatch;
use verbatim::comment::{skipped, Polarity};
use verbatim::comment::{Comment, SourceCoords};
use verbatim::config::NlpConfig;
use verbatim::metrics::Metrics;
use verbatim::nlp::{operators_for, run_operators};

mod support;
use support::{required, root, run_ok, verbatim};

fn cfg() -> Option<NlpConfig> {
    let c = NlpConfig {
        model: "all-MiniLM-L6-v2".into(),
        models_dir: root().join("models"),
        cache_dir: root().join(".cache/models"),
        heads_dir: root().join("models/heads"),
        onnxruntime_library: root().join(".cache/onnxruntime/libonnxruntime.so"),
        ..NlpConfig::default()
    };
    if c.cache_dir
        .join("all-MiniLM-L6-v2/model.int8.onnx")
        .is_file()
    {
        return Some(c);
    }
    assert!(
        !required(),
        "model files missing: run `bash models/setup.sh`"
    );
    eprintln!("skipping: run `bash models/setup.sh` for the analysis tests");
    None
}

/// [`cfg`] with multilingual-e5-small, when its files are there.
fn e5_cfg() -> Option<NlpConfig> {
    let mut cfg = cfg()?;
    cfg.model = "multilingual-e5-small".into();
    if !cfg
        .cache_dir
        .join("multilingual-e5-small/model.int8.onnx")
        .is_file()
    {
        assert!(
            !required(),
            "multilingual-e5-small missing: run `bash models/setup.sh`"
        );
        return None;
    }
    Some(cfg)
}

fn shared(rel: &str) -> Option<PathBuf> {
    let p = root().join("../shared/data").join(rel);
    if p.is_file() {
        return Some(p);
    }
    assert!(!required(), "{} missing", p.display());
    eprintln!("skipping: {} missing", p.display());
    None
}

fn analyse(cfg: &NlpConfig, texts: &[&str]) -> Vec<Comment> {
    analyse_with(cfg, &Default::default(), texts)
}

/// Runs the `[nlp]` stages with the pipeline's `[flags]` and `[targets]`
/// tables over one batch of `texts`.
fn analyse_full(
    cfg: &NlpConfig,
    flags: &std::collections::BTreeMap<String, verbatim::config::FlagPatterns>,
    targets: &std::collections::BTreeMap<String, verbatim::config::TargetExamples>,
    texts: &[&str],
) -> Vec<Comment> {
    let mut stages = operators_for(cfg, flags, targets).unwrap();
    let mut batch = CommentBatch::default();
    for (i, t) in texts.iter().enumerate() {
        let coords = SourceCoords {
            topic: "t".into(),
            partition: 0,
            offset: i as i64,
            kafka_timestamp: None,
        };
        batch.comments.push(Comment::new(
            coords,
            i.to_string(),
            t.to_string(),
            Utc::now(),
            Utc::now(),
        ));
    }
    run_operators(&mut stages.operators, &mut batch, &Metrics::new()).unwrap();
    batch.comments
}

fn analyse_with(
    cfg: &NlpConfig,
    targets: &std::collections::BTreeMap<String, verbatim::config::TargetExamples>,
    texts: &[&str],
) -> Vec<Comment> {
    analyse_full(cfg, &Default::default(), targets, texts)
}

/// With `nlp.encode_whole = false` a comment whose clauses "but" joins is
/// encoded only as its pieces (README, "Comment analysis"): the mixed
/// comment still reads staff praise and product blame on their clauses, a
/// comment with no contrast is encoded exactly as before, and a mixed
/// comment costs its own tokens plus one prefix per extra piece, not twice
/// its tokens.
#[test]
fn pieces_instead_of_the_whole_comment() {
    let Some(cfg) = e5_cfg() else { return };
    let pieces = NlpConfig {
        encode_whole: false,
        ..cfg.clone()
    };
    let texts = [
        "Great hotel. The receptionist was lovely but the room smelled of damp. We may return.",
        "Отличный отель, персонал очень приветливый.",
    ];
    let whole = analyse(&cfg, &texts);
    let apart = analyse(&pieces, &texts);
    let a = apart[0].nlp.aspects.as_ref().expect("analysed");
    let staff = a.iter().find(|x| &*x.target == "staff").expect("staff");
    assert_eq!(staff.polarity, Polarity::Positive, "{a:?}");
    assert_eq!(staff.text, "The receptionist was lovely");
    let negative = a
        .iter()
        .find(|x| x.polarity == Polarity::Negative)
        .unwrap_or_else(|| panic!("the damp: {a:?}"));
    assert_eq!(negative.text, "but the room smelled of damp.");
    let cosine = |a: &Comment, b: &Comment| -> f32 {
        a.nlp
            .embedding
            .iter()
            .flatten()
            .zip(b.nlp.embedding.iter().flatten())
            .map(|(x, y)| x * y)
            .sum()
    };
    // No contrast: the same sequence (int8 activations are quantised per
    // sub-batch, and the sub-batches differ, so the vector is near, not
    // equal).
    assert_eq!(apart[1].nlp.token_count, whole[1].nlp.token_count);
    let same = cosine(&apart[1], &whole[1]);
    assert!(same > 0.97, "{same}");
    // Mixed: the pieces' words once, with one set of special tokens.
    let (w, p) = (
        whole[0].nlp.token_count.unwrap(),
        apart[0].nlp.token_count.unwrap(),
    );
    assert!(p <= w + 2 && p + 2 >= w, "whole {w}, pieces {p}");
    let e = apart[0].nlp.embedding.as_ref().unwrap();
    let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    let cos = cosine(&apart[0], &whole[0]);
    // 0.77 when measured, in the theme space where unrelated comments sit
    // near 0.1.
    assert!(
        cos > 0.6,
        "the comment's vector stays near its whole one: {cos}"
    );
    // `verbatim train` reads the vectors the stage gives the heads: the
    // pieces joined with `encode_whole = false`, the whole text otherwise.
    let mut read = Vec::new();
    for (c, out) in [(&cfg, &whole), (&pieces, &apart)] {
        let (tokens, dim, _) = verbatim::cli::train::encode_all(c, &texts).expect("encoded");
        for (t, o) in tokens.iter().zip(out.iter()) {
            assert_eq!(t.len() / dim, o.nlp.token_count.unwrap() as usize);
        }
        read.push(tokens);
    }
    // The clauses were encoded apart, so no vector of the whole is there.
    let (w0, p0) = (&read[0][0], &read[1][0]);
    assert!(
        w0.len() != p0.len() || w0.iter().zip(p0).any(|(a, b)| (a - b).abs() > 1e-3),
        "the pieces' vectors, not the whole comment's"
    );
}

#[test]
fn staff_praised_product_blamed_each_on_its_clause() {
    let Some(cfg) = cfg() else { return };
    let text = "The engineer was lovely but the app keeps crashing";
    let out = analyse(&cfg, &[text]);
    let a = out[0].nlp.aspects.as_ref().expect("analysed");
    let staff = a.iter().find(|x| &*x.target == "staff").expect("staff");
    let product = a.iter().find(|x| &*x.target == "product").expect("product");
    assert_eq!(staff.polarity, Polarity::Positive, "{a:?}");
    assert_eq!(product.polarity, Polarity::Negative, "{a:?}");
    assert_eq!(staff.text, "The engineer was lovely");
    assert_eq!(product.text, "but the app keeps crashing");
    // Spans are characters of the text.
    let chars: String = text
        .chars()
        .skip(product.start as usize)
        .take((product.end - product.start) as usize)
        .collect();
    assert_eq!(chars, product.text);
    // The token vectors were dropped once used.
    assert!(out[0].nlp.tokens.is_none());
    assert!(out[0].nlp.sentiment.is_some());
}

#[test]
fn languages_the_model_cannot_read_are_null_with_a_reason() {
    let Some(cfg) = cfg() else { return };
    let out = analyse(
        &cfg,
        &[
            "Курьер был вежлив, но посылка пришла мятой и на два дня позже.",
            "The parcel arrived crushed and two days late.",
        ],
    );
    assert_eq!(out[0].nlp.language, Some("ru"));
    assert!(out[0].nlp.aspects.is_none() && out[0].nlp.sentiment.is_none());
    assert_eq!(
        out[0].nlp.analysis_skipped,
        Some(skipped::LANGUAGE_NOT_SUPPORTED)
    );
    // Flags still work in Russian; the English one is analysed.
    assert!(out[0].nlp.flags.is_some());
    assert!(out[1].nlp.aspects.is_some());
    assert_eq!(out[1].nlp.analysis_skipped, None);
    assert_eq!(
        out[1].nlp.sentiment.map(|s| s.label),
        Some(Polarity::Negative)
    );
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let out = run_ok(verbatim().arg("eval").args(args));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn f1(v: &serde_json::Value, kind: &str, t: &str) -> f64 {
    v[kind][t]["f1"].as_f64().unwrap()
}

/// Issue 4's bars on MAMS val (never trained on). Met: targets staff and
/// product >= 0.88, staff complaints >= 0.85. Not met (see README, "What the
/// numbers are"): product complaints >= 0.60 and polarity >= 0.72; for those
/// the test holds the measured level so a regression shows.
#[test]
fn mams_validation_scores() {
    let Some(_) = cfg() else { return };
    let Some(val) = shared("labelled/mams_val.jsonl") else {
        return;
    };
    let v = eval_json(&["--json", "--input", val.to_str().unwrap()]);
    eprintln!("{v}");
    assert_eq!(v["n"], 400);
    for key in ["targets", "complaints", "polarity_accuracy"] {
        assert!(!v[key].is_null(), "{key}");
    }
    assert!(v.get("flags").is_none(), "MAMS rows carry no flags");
    assert!(f1(&v, "targets", "staff") >= 0.88);
    assert!(f1(&v, "targets", "product") >= 0.88);
    assert!(f1(&v, "complaints", "staff") >= 0.85);
    assert!(v["polarity_accuracy"].as_f64().unwrap() >= 0.69);
    assert!(f1(&v, "complaints", "product") >= 0.20);
}

/// `eval --predictions` writes one line per row of the team set: the
/// stages' own output beside the gold labels, Russian rows analysed like
/// English ones by the default multilingual model, every disagreement named.
#[test]
fn eval_writes_predictions_beside_gold() {
    let Some(_) = cfg() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pred.jsonl");
    let input = root().join("tests/fixtures/team_labelled.jsonl");
    let v = eval_json(&[
        "--json",
        "--input",
        input.to_str().unwrap(),
        "--predictions",
        out.to_str().unwrap(),
        "--by",
        "language",
    ]);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, v["n"].as_u64().unwrap());
    let gold_rows = std::fs::read_to_string(&input).unwrap();
    for (row, line) in rows.iter().zip(gold_rows.lines()) {
        let gold: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["id"], gold["id"]);
        // The default model reads both languages.
        match row["language"].as_str() {
            Some("en" | "ru") => {
                assert!(row["aspects"].is_array(), "{row}");
                assert!(row["analysis_skipped"].is_null(), "{row}");
            }
            other => panic!("unexpected language {other:?}: {row}"),
        }
        // Every flag disagreement is a real one.
        for d in row["disagreements"].as_array().unwrap() {
            let d = d.as_str().unwrap();
            if let Some((flag, rest)) = d.split_once(": gold ") {
                if let Some(want) = gold["flags"].get(flag) {
                    let got = row["flags"].as_array().unwrap().iter().any(|f| f == flag);
                    assert_eq!(rest, format!("{want}, predicted {got}"));
                    assert_ne!(want.as_bool().unwrap(), got, "{d}");
                }
            }
        }
    }
    // Each flag's precision and recall, counted from the file, are the report's.
    for (flag, prf) in v["flags"].as_object().unwrap() {
        let (mut tp, mut fp, mut fn_) = (0f64, 0f64, 0f64);
        for r in &rows {
            let Some(want) = r["gold_flags"].get(flag).and_then(|x| x.as_bool()) else {
                if r["gold_flags"].is_object() {
                    let got = r["flags"].as_array().unwrap().iter().any(|f| f == flag);
                    fp += f64::from(u8::from(got));
                }
                continue;
            };
            let got = r["flags"].as_array().unwrap().iter().any(|f| f == flag);
            match (want, got) {
                (true, true) => tp += 1.0,
                (false, true) => fp += 1.0,
                (true, false) => fn_ += 1.0,
                _ => {}
            }
        }
        let close = |a: f64, b: &serde_json::Value| (a - b.as_f64().unwrap()).abs() < 1e-9;
        assert!(close(tp / (tp + fp).max(1.0), &prf["precision"]), "{flag}");
        assert!(close(tp / (tp + fn_).max(1.0), &prf["recall"]), "{flag}");
    }
    // `--by language`: each language's rows scored apart, adding up to the
    // whole (the set's `lang` field names the group).
    let by = v["by"]["language"].as_object().expect("by.language");
    let langs: Vec<&str> = by.keys().map(String::as_str).collect();
    assert_eq!(langs, ["en", "ru"]);
    let mut n = 0;
    for (lang, g) in by {
        let rows_here = gold_rows
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lang"] == **lang)
            .count() as u64;
        assert_eq!(g["n"].as_u64(), Some(rows_here), "{lang}");
        assert_eq!(g["not_analysed"], 0, "{lang}: the default model reads it");
        assert!(g["polarity_accuracy"].is_f64(), "{lang}: {g}");
        assert!(g["complaints"]["staff"]["f1"].is_f64(), "{lang}");
        n += rows_here;
    }
    assert_eq!(Some(n), v["n"].as_u64());
    let analysed: u64 = by.values().map(|g| g["analysed"].as_u64().unwrap()).sum();
    assert_eq!(Some(analysed), v["analysed"].as_u64());
}

#[test]
fn int8_stays_within_a_point_or_one_row_of_fp32() {
    let Some(_) = cfg() else { return };
    let Some(val) = shared("labelled/mams_val.jsonl") else {
        return;
    };
    let v = eval_json(&[
        "--json",
        "--compare-precision",
        "--model",
        "all-MiniLM-L6-v2",
        "--input",
        val.to_str().unwrap(),
    ]);
    eprintln!(
        "MiniLM: {} int8 {} below fp32, bar {}",
        v["worst_headline"], v["max_headline_drop"], v["bar"]
    );
    assert_eq!(v["within_bar"], true, "{v}");
    assert!(v["fp32"]["encoder"].as_str().unwrap().ends_with("fp32"));
    // The default multilingual model, held to the same bar: a point, or
    // one gold row's worth where one row moves a score more (product
    // complaints have 25 positives in mams_val: one miss is ~4 points).
    // `eval` exits 3 when int8 is over it.
    let v = eval_json(&[
        "--json",
        "--compare-precision",
        "--input",
        val.to_str().unwrap(),
    ]);
    eprintln!(
        "multilingual-e5-small: {} int8 {} below fp32, bar {}",
        v["worst_headline"], v["max_headline_drop"], v["bar"]
    );
    assert!(v["int8"]["encoder"]
        .as_str()
        .unwrap()
        .starts_with("multilingual-e5-small"));
    assert_eq!(v["within_bar"], true, "{v}");
}

/// Retrains with the command a committed manifest records (output
/// redirected) and checks the same weights come out: the same bytes where
/// this machine's int8 vectors are those they were made from
/// ([`support::int8_matches_committed`]), tensors pointing the same way
/// elsewhere.
fn retrain_matches(manifest: &str, out_file: &str) {
    let manifest_dir = Path::new(manifest).parent().unwrap();
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join(manifest)).unwrap()).unwrap();
    for d in manifest["data"].as_array().unwrap() {
        let p = Path::new(d["path"].as_str().unwrap());
        if !root().join(p).is_file() {
            assert!(!required(), "{} missing", p.display());
            return;
        }
    }
    let out_dir = tempfile::tempdir().unwrap();
    // The manifest's own command, with the output redirected.
    let cmd = manifest["command"].as_str().unwrap();
    let mut args: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
    let i = args.iter().position(|a| a == "--out").unwrap();
    args[i + 1] = out_dir.path().join("h").display().to_string();
    run_ok(verbatim().args(&args));
    let again: toml::Value =
        toml::from_str(&std::fs::read_to_string(out_dir.path().join("h").join(out_file)).unwrap())
            .unwrap();
    assert_eq!(again["data"], manifest["data"]);
    if support::int8_matches_committed(manifest["model"].as_str().unwrap()) {
        assert_eq!(
            again["weights_sha256"], manifest["weights_sha256"],
            "retraining with `{cmd}` gave other weights"
        );
        return;
    }
    // Where this machine's int8 features differ a little from the maker's,
    // the weights do too: each tensor must point the same way. Measured
    // on a VNNI CPU:
    // heads trained on fp32 instead of int8 features reach cosine
    // 0.988-0.994 to the committed ones (MiniLM heads 0.994, flags 0.988);
    // flag heads trained without one of their two input files, 0.848; the
    // flag heads made on a Xeon, retrained on a Zen 4 EPYC, 0.992.
    let weights = manifest["weights"].as_str().unwrap();
    let load = |p: &Path| candle_core::safetensors::load(p, &candle_core::Device::Cpu).unwrap();
    let committed = load(&root().join(manifest_dir).join(weights));
    let retrained = load(&out_dir.path().join("h").join(weights));
    for (name, c) in &committed {
        let a: Vec<f32> = c.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = retrained[name].flatten_all().unwrap().to_vec1().unwrap();
        if a.len() < 16 || a.iter().all(|x| *x == 0.0) {
            continue;
        }
        let cos = verbatim::nlp::encoder::cosine(&a, &b);
        eprintln!("{weights} {name}: cosine {cos:.4} to the committed tensor (int8 differs here: bytes may differ)");
        assert!(
            cos >= 0.95,
            "retraining with `{cmd}`: {name} at cosine {cos}"
        );
    }
}

#[test]
fn committed_heads_are_what_train_makes() {
    let Some(_) = cfg() else { return };
    retrain_matches("models/heads/all-MiniLM-L6-v2/heads.toml", "heads.toml");
}

/// The e5 heads too (4.8 minutes on 2 cores with a release build, 6.6 with
/// the test profile's, the same bytes): stop 41 took another
/// CPU's bytes for drift in the training code because nothing checked them.
#[test]
fn committed_e5_heads_are_what_train_makes() {
    let Some(_) = e5_cfg() else { return };
    retrain_matches(
        "models/heads/multilingual-e5-small/heads.toml",
        "heads.toml",
    );
}

/// With the e5 manifest's `read_clauses`, a target one clause names is found
/// even where the whole sentence's score misses it, with that clause's
/// polarity, in both languages; the same heads read the old way (the key
/// off, as MiniLM's manifest has it) miss the praised staff.
#[test]
fn every_clause_is_read_apart_when_the_manifest_says_so() {
    let Some(cfg) = e5_cfg() else { return };
    let texts = [
        "The broker was patient and clear, but the policy documents in the portal are unreadable.",
        "The product is solid; the account manager never replies to email.",
        "Персонал тёплый и быстрый, но музыка такая громкая, что невозможно разговаривать.",
        "The engineer was great, the app keeps crashing.",
    ];
    let want = [
        (Polarity::Positive, "The broker was patient"),
        (
            Polarity::Negative,
            "the account manager never replies to email.",
        ),
        (Polarity::Positive, "Персонал тёплый и быстрый,"),
        (Polarity::Positive, "The engineer was great,"),
    ];
    let staff = |c: &Comment| -> Vec<(Polarity, String)> {
        c.nlp
            .aspects
            .iter()
            .flatten()
            .filter(|a| &*a.target == "staff")
            .map(|a| (a.polarity, a.text.clone()))
            .collect()
    };
    let manifest = root().join("models/heads/multilingual-e5-small/heads.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains("\nread_clauses = true\n"),
        "e5 heads read clauses apart"
    );
    // Each comment alone, so no batch-mate moves the int8 scales.
    for (t, (p, span)) in texts.iter().zip(want) {
        let c = &analyse(&cfg, &[t])[0];
        assert_eq!(staff(c), vec![(p, span.to_string())], "{t}");
    }
    // The same weights with the key off.
    let off = tempfile::tempdir().unwrap();
    let dir = off.path().join("multilingual-e5-small");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["heads.safetensors", "flags.safetensors", "flags.toml"] {
        std::fs::copy(manifest.with_file_name(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("heads.toml"),
        text.replace("\nread_clauses = true\n", "\nread_clauses = false\n"),
    )
    .unwrap();
    let old = NlpConfig {
        heads_dir: off.path().to_path_buf(),
        ..cfg
    };
    // The Russian praise and the brief's own example lose their staff
    // praise read as a whole. (The account manager's complaint is found
    // either way when the comment is alone; the broker's praise is found
    // read as a whole too where int8 is not exact, as on AVX2 alone.)
    for (t, (p, _)) in texts
        .iter()
        .zip(want)
        .filter(|(t, _)| t.starts_with("Персонал") || t.starts_with("The engineer"))
    {
        let c = &analyse(&old, &[t])[0];
        assert!(
            !staff(c).iter().any(|s| s.0 == p),
            "read as a whole, {t:?} finds {:?}",
            staff(c)
        );
    }
}

/// The e5 sentiment head has a neutral class: plain statements of fact read
/// neutral in both languages (the two-class head called the hotel-room one
/// positive), and clear praise and anger keep their sides.
#[test]
fn plain_statements_read_neutral_in_both_languages() {
    let Some(cfg) = e5_cfg() else { return };
    let manifest =
        std::fs::read_to_string(root().join("models/heads/multilingual-e5-small/heads.toml"))
            .unwrap();
    assert!(manifest.contains("\nsentiment_classes = 3\n"));
    let cases = [
        (
            "I ordered the blue model on Tuesday and it came on Friday.",
            Polarity::Neutral,
        ),
        (
            "Я оформил заказ во вторник, доставили в пятницу.",
            Polarity::Neutral,
        ),
        (
            "The laptop has 16 GB of memory and a 512 GB disk.",
            Polarity::Neutral,
        ),
        ("В номере есть телевизор и чайник.", Polarity::Neutral),
        (
            "Absolutely love this phone, best purchase this year.",
            Polarity::Positive,
        ),
        (
            "Ужасный сервис, больше никогда не приду.",
            Polarity::Negative,
        ),
    ];
    for (t, want) in cases {
        let c = &analyse(&cfg, &[t])[0];
        let s = c.nlp.sentiment.expect("analysed");
        assert_eq!(s.label, want, "{t}: {s:?}");
        assert!((-1.0..=1.0).contains(&s.score));
    }
}

/// `[flags.<name>] examples` adds a flag by example phrases: a clause close
/// to one raises it with that clause as evidence; comments about something
/// else do not. The examples are given in both languages, as analysts
/// should: an English example alone reached the Russian clause at cosine
/// 0.861 against the threshold 0.85 with exact int8 (AVX-512 VNNI) and
/// fell under it on AVX2 alone.
#[test]
fn a_flag_defined_by_examples_is_raised_on_its_clause() {
    let Some(cfg) = e5_cfg() else { return };
    let flags: std::collections::BTreeMap<String, verbatim::config::FlagPatterns> = toml::from_str(
        "[billing_error]\nexamples = [\"I was charged twice\", \"the amount on my bill is wrong\", \"деньги списали два раза\", \"в счёте неверная сумма\"]\n",
    )
    .unwrap();
    let texts = [
        "Отличный персонал. С меня дважды списали деньги за один заказ.",
        "My invoice shows a price I never agreed to.",
        "The room was lovely and the breakfast was great.",
        "Номер чистый, завтрак вкусный.",
    ];
    let out = analyse_full(&cfg, &flags, &Default::default(), &texts);
    let evidence = |c: &Comment| -> Vec<String> {
        c.nlp
            .flags
            .iter()
            .flatten()
            .filter(|e| e.flag == "billing_error")
            .map(|e| e.text.clone())
            .collect()
    };
    assert_eq!(
        evidence(&out[0]),
        vec!["С меня дважды списали деньги за один заказ."]
    );
    assert_eq!(
        evidence(&out[1]),
        vec!["My invoice shows a price I never agreed to."]
    );
    for c in &out[2..] {
        assert!(evidence(c).is_empty(), "{}: {:?}", c.text, c.nlp.flags);
    }
}

/// A flag's exclusions withdraw it whatever raised it: a clause close to
/// the examples raises `billing_error` ("I was charged twice"), and with
/// `exclude = ["refunded"]` the same clause in a sentence that says it was
/// refunded raises nothing, as a pattern's match there would not.
#[test]
fn exclusions_withdraw_a_flag_raised_by_examples() {
    let Some(cfg) = e5_cfg() else { return };
    let examples = "examples = [\"I was charged twice\", \"the amount on my bill is wrong\"]";
    let with = |extra: &str| -> std::collections::BTreeMap<String, verbatim::config::FlagPatterns> {
        toml::from_str(&format!("[billing_error]\n{examples}\n{extra}")).unwrap()
    };
    let texts = ["I was charged twice for one order, but it was refunded the same day."];
    let raised = |flags: &std::collections::BTreeMap<String, verbatim::config::FlagPatterns>| {
        let out = analyse_full(&cfg, flags, &Default::default(), &texts);
        out[0]
            .nlp
            .flags
            .iter()
            .flatten()
            .any(|e| e.flag == "billing_error")
    };
    assert!(
        raised(&with("")),
        "the examples raise it without the exclusion"
    );
    assert!(!raised(&with("exclude = [\"refunded\"]")));
}

/// The learned flags (`verbatim train-flags`, 5 s) are reproduced by the
/// command their manifest records (byte for byte where this machine's int8
/// vectors are the maker's).
#[test]
fn committed_flag_heads_are_what_train_flags_makes() {
    let Some(_) = e5_cfg() else { return };
    retrain_matches(
        "models/heads/multilingual-e5-small/flags.toml",
        "flags.toml",
    );
}

/// The learned flags catch a request no pattern names, in English and
/// Russian, with the clause that says it as evidence; a plain comment
/// raises nothing.
#[test]
fn learned_flags_catch_new_wording_in_both_languages() {
    let Some(cfg) = e5_cfg() else { return };
    let texts = [
        "Great staff. They keep emailing me questionnaires after every visit, I'm sick of them.",
        "Отличный персонал. Но анкеты после каждого визита уже надоели.",
        "The room was lovely and the breakfast was great.",
    ];
    // No pattern knows these words.
    let matcher = verbatim::nlp::flags::FlagMatcher::new(&Default::default()).unwrap();
    for t in &texts[..2] {
        assert!(matcher.evidence(t).is_empty(), "{t}");
    }
    for (t, word) in texts[..2].iter().zip(["questionnaires", "анкеты"]) {
        let out = analyse(&cfg, &[t]);
        let flags = out[0].nlp.flags.as_ref().expect("flag stage ran");
        let e = flags
            .iter()
            .find(|e| e.flag == "survey_fatigue")
            .unwrap_or_else(|| panic!("{t}: {flags:?}"));
        assert!(e.text.contains(word), "evidence is the clause: {e:?}");
        let chars: Vec<char> = t.chars().collect();
        let span: String = chars[e.start as usize..e.end as usize].iter().collect();
        assert_eq!(span.trim(), e.text);
    }
    let out = analyse(&cfg, &texts[2..]);
    assert_eq!(out[0].nlp.flags.as_deref(), Some(&[][..]), "{}", texts[2]);
}

/// A repeat issue needs a problem that repeats: its words in praise
/// ("again", "the fourth time") raise it in the pattern stage, and the
/// analysis withdraws it because nothing in the comment is negative; the
/// same words in a complaint keep it, in English and Russian; a pipeline
/// that sets `needs_complaint = false` keeps every match.
#[test]
fn repeat_issue_needs_a_complaint() {
    let Some(cfg) = e5_cfg() else { return };
    let praise = [
        "I ordered from you again, the fourth time this year — all perfect, thank you!",
        "Заказываю у вас снова, уже в четвёртый раз — всё отлично, спасибо!",
    ];
    let complaints = [
        "The router dropped the connection again, the fourth time this week.",
        "Роутер снова отключился, уже в четвёртый раз за неделю.",
    ];
    let matcher = verbatim::nlp::flags::FlagMatcher::new(&Default::default()).unwrap();
    let raised = |c: &Comment| {
        c.nlp
            .flags
            .as_ref()
            .expect("flag stage ran")
            .iter()
            .any(|e| e.flag == "repeat_issue")
    };
    for t in praise.iter().chain(&complaints) {
        assert!(
            matcher.evidence(t).iter().any(|e| e.flag == "repeat_issue"),
            "the pattern fires on {t}"
        );
    }
    let texts: Vec<&str> = praise.iter().chain(&complaints).copied().collect();
    let out = analyse(&cfg, &texts);
    for (c, t) in out.iter().zip(&texts) {
        assert_eq!(raised(c), complaints.contains(t), "{t}: {:?}", c.nlp);
    }
    let off: std::collections::BTreeMap<String, verbatim::config::FlagPatterns> =
        toml::from_str("[repeat_issue]\nneeds_complaint = false").unwrap();
    let out = analyse_full(&cfg, &off, &Default::default(), &praise);
    assert!(out.iter().all(raised), "{:?}", out[0].nlp.flags);
}

/// `[targets.billing]` with three English example phrases and no threshold.
fn billing_target() -> std::collections::BTreeMap<String, verbatim::config::TargetExamples> {
    toml::from_str(
        r#"
        [billing]
        examples = ["I was charged twice", "the bill was wrong", "they overcharged me on my invoice"]
        "#,
    )
    .unwrap()
}

#[test]
fn analysts_add_a_target_by_examples() {
    let Some(cfg) = cfg() else { return };
    let targets = billing_target();
    let out = analyse_with(
        &cfg,
        &targets,
        &[
            "The technician was friendly, but I was charged twice for the visit.",
            "The hotel room was spotless and the view was lovely.",
        ],
    );
    let a = out[0].nlp.aspects.as_ref().unwrap();
    eprintln!("{a:#?}");
    let billing = a.iter().find(|x| &*x.target == "billing").expect("billing");
    assert_eq!(billing.text, "but I was charged twice for the visit.");
    assert_eq!(billing.polarity, Polarity::Negative);
    let b = out[1].nlp.aspects.as_ref().unwrap();
    assert!(!b.iter().any(|x| &*x.target == "billing"), "{b:#?}");
}

/// A target by examples with no `min_similarity` takes the model's
/// calibrated threshold: e5's cosines sit far higher than MiniLM's (an
/// unrelated clause scores 0.79-0.84 against the examples, a billing clause
/// 0.86-0.92), so MiniLM's 0.45 would put `billing` on every clause. The
/// English examples also find Russian billing clauses.
#[test]
fn a_target_by_examples_takes_the_models_calibrated_threshold() {
    let Some(cfg) = e5_cfg() else { return };
    let targets = billing_target();
    let texts = [
        ("They took the payment two times from my card.", true),
        ("С меня дважды списали деньги за один заказ.", true),
        (
            "The hotel room was spotless and the view was lovely.",
            false,
        ),
        ("Официант был груб и долго не подходил к столу.", false),
        ("The app keeps crashing when I open the settings.", false),
    ];
    let out = analyse_with(&cfg, &targets, &texts.map(|(t, _)| t));
    for (c, (text, billing)) in out.iter().zip(texts) {
        let a = c.nlp.aspects.as_ref().expect("analysed");
        assert_eq!(
            a.iter().any(|x| &*x.target == "billing"),
            billing,
            "{text}: {a:#?}"
        );
    }
}

/// The operators the pipeline builds from the shipped pipeline file are
/// exactly `pipeline::OPERATORS`, in order (README's and the crate docs'
/// stage tables are checked against that list by unit tests).
#[test]
fn the_pipeline_builds_the_documented_operators_in_order() {
    let Some(nlp) = cfg() else { return };
    let mut pipeline =
        verbatim::config::PipelineConfig::load(&root().join("pipelines/feedback.toml")).unwrap();
    let out = tempfile::tempdir().unwrap();
    pipeline.output.root = out.path().to_path_buf();
    pipeline.nlp = Some(nlp);
    let built = verbatim::pipeline::build_operators(&pipeline, Vec::new()).unwrap();
    let names: Vec<&str> = built.operators.iter().map(|o| o.name()).collect();
    let documented: Vec<&str> = verbatim::pipeline::OPERATORS
        .iter()
        .map(|(name, _, _)| *name)
        .collect();
    assert_eq!(names, documented);
}

/// With multilingual-e5-small (its manifest lists `ru`), a Russian comment
/// is analysed like its English original: sentiment, and the product
/// complaint on the clause that makes it.
#[test]
fn the_multilingual_model_analyses_russian_like_english() {
    let Some(cfg) = e5_cfg() else { return };
    let out = analyse(
        &cfg,
        &[
            "Приложение постоянно вылетает и не открывается.",
            "The app keeps crashing and will not open.",
        ],
    );
    for (c, lang) in out.iter().zip(["ru", "en"]) {
        assert_eq!(c.nlp.language, Some(lang));
        assert_eq!(c.nlp.analysis_skipped, None, "{}", c.text);
        assert_eq!(
            c.nlp.sentiment.map(|s| s.label),
            Some(Polarity::Negative),
            "{}",
            c.text
        );
        let a = c.nlp.aspects.as_ref().expect("analysed");
        assert!(
            a.iter()
                .any(|x| &*x.target == "product" && x.polarity == Polarity::Negative),
            "{}: {a:?}",
            c.text
        );
    }
}

/// Praise and complaint joined by "but"/"но" are read apart: each clause
/// is also encoded on its own (`nlp.encode_clauses`), and its polarity is
/// read from there. Read from the whole sentence, the complaint coloured
/// the praise: every staff clause here came out negative, and the Russian
/// one had no staff aspect at all. Each comment alone, so no batch-mate
/// moves the int8 scales.
#[test]
fn contrastive_clauses_keep_their_own_polarity() {
    let Some(cfg) = e5_cfg() else { return };
    assert!(cfg.encode_clauses, "on by default");
    for (text, praise, complaint) in [
        (
            "Our server was brilliant, but the pasta was stone cold.",
            "Our server was brilliant,",
            "product",
        ),
        (
            "The technician was very helpful, but the internet still does not work.",
            "The technician was very helpful,",
            "product",
        ),
        (
            "The staff were lovely, but the room was dirty.",
            "The staff were lovely,",
            "environment",
        ),
        (
            "Мастер был вежлив, но интернет так и не работает.",
            "Мастер был вежлив,",
            "product",
        ),
    ] {
        let out = analyse(&cfg, &[text]);
        let a = out[0].nlp.aspects.as_ref().expect("analysed");
        let staff = a.iter().find(|x| &*x.target == "staff").expect("staff");
        assert_eq!(staff.text, praise, "{a:?}");
        assert_eq!(staff.polarity, Polarity::Positive, "{text}: {a:?}");
        let c = a.iter().find(|x| &*x.target == complaint).expect(complaint);
        assert_eq!(c.polarity, Polarity::Negative, "{text}: {a:?}");
        // The clause vectors were dropped with the comment's.
        assert!(out[0].nlp.tokens.is_none());
    }
}

/// A mention as the tests compare them: target, polarity, confidence.
type Mention = (String, Polarity, f32);

/// Each comment's mentions after the `[nlp]` stages of `cfg`.
fn mentions(cfg: &NlpConfig, texts: &[&str]) -> Vec<Vec<Mention>> {
    analyse(cfg, texts)
        .iter()
        .map(|c| {
            c.nlp
                .aspects
                .as_ref()
                .expect("analysed")
                .iter()
                .map(|a| (a.target.to_string(), a.polarity, a.confidence))
                .collect()
        })
        .collect()
}

/// Per-target presence thresholds (README, "A threshold per target"): with
/// the e5 heads' own (product 0.65, process 0.35 in their manifest) a
/// contract renewal is a process complaint and not also a product one; a
/// lower product threshold through `nlp.presence` (0.3) brings the product
/// back (the old 0.5 did with the Xeon's heads, not with the EPYC's: README,
/// "Two CPUs, two sets of bytes"); at 1.0 it silences product and moves no
/// other target; true product mentions stay, in both languages (the Russian
/// one's polarity is not asserted: its confidence is below 0.5, and the
/// Xeon's heads read "приложение постоянно вылетает" as positive).
#[test]
fn each_target_has_its_own_presence_threshold() {
    let Some(cfg) = e5_cfg() else { return };
    let texts = [
        "Friendly account manager, but the contract renewal was a bureaucratic nightmare.",
        "The engineer was lovely but the app keeps crashing",
        "Мастер был вежливый, но приложение постоянно вылетает.",
    ];
    let with = |presence: &[(&str, f32)]| {
        let c = NlpConfig {
            presence: presence.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            ..cfg.clone()
        };
        mentions(&c, &texts)
    };
    let has = |a: &[Mention], t: &str, p: Polarity| a.iter().any(|x| x.0 == t && x.1 == p);
    let shipped = with(&[]);
    assert!(
        has(&shipped[0], "process", Polarity::Negative),
        "{shipped:?}"
    );
    assert!(!shipped[0].iter().any(|x| x.0 == "product"), "{shipped:?}");
    for s in &shipped[1..] {
        assert!(has(s, "staff", Polarity::Positive), "{shipped:?}");
        assert!(s.iter().any(|x| x.0 == "product"), "{shipped:?}");
    }
    assert!(
        has(&shipped[1], "product", Polarity::Negative),
        "{shipped:?}"
    );
    let lower = with(&[("product", 0.3)]);
    assert!(has(&lower[0], "product", Polarity::Negative), "{lower:?}");
    let never = with(&[("product", 1.0)]);
    for (n, s) in never.iter().zip(&shipped) {
        let others: Vec<_> = s.iter().filter(|x| x.0 != "product").cloned().collect();
        assert_eq!(n, &others);
    }
}

/// The sentiment head read over a mention's clause can be weighed into
/// its polarity (`nlp.clause_sentiment`; README, "The sentiment head over
/// the clause"; measured, not the default): on its own (weight 1) it reads
/// a dismissive doctor and a pushy adviser as staff complaints, where the
/// aspect head alone (the e5 manifest's weight, none) reads them as praise;
/// at 0.3, mixed comments keep staff praise and product blame apart in both
/// languages.
#[test]
fn the_clause_sentiment_can_be_weighed_into_a_mentions_polarity() {
    let Some(cfg) = e5_cfg() else { return };
    let texts = [
        "The doctor was dismissive and talked over me the whole appointment.",
        "The adviser was pushy and tried to sell me a loan I didn't need.",
        "The engineer was lovely but the app keeps crashing",
        "Мастер был вежливый, но приложение постоянно вылетает.",
    ];
    let with = |w: Option<f32>| {
        let c = NlpConfig {
            clause_sentiment: w,
            ..cfg.clone()
        };
        mentions(&c, &texts)
    };
    let staff = |a: &[Mention]| a.iter().find(|x| x.0 == "staff").map(|x| x.1);
    let alone = with(Some(1.0));
    assert_eq!(staff(&alone[0]), Some(Polarity::Negative), "{alone:?}");
    assert_eq!(staff(&alone[1]), Some(Polarity::Negative), "{alone:?}");
    let shipped = with(None);
    assert_eq!(shipped, with(Some(0.0)));
    assert_ne!(shipped, alone);
    let mixed = with(Some(0.3));
    for a in &mixed[2..] {
        assert_eq!(staff(a), Some(Polarity::Positive), "{mixed:?}");
        assert!(
            a.iter()
                .any(|x| x.0 == "product" && x.1 == Polarity::Negative),
            "{mixed:?}"
        );
    }
}
