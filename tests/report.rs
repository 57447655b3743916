//! The report as a reader sees it: the demo's HTML rendered by headless
//! Chromium (Debian's `chromium`), every section present, no network request
//! from the page, a screenshot taken (README's `docs/report.png`); and the
//! fair scorecard on a fixture where one person's negatives are all about the
//! product.

use std::path::{Path, PathBuf};
use std::process::Command;

use verbatim::report::render::SECTIONS;

mod support;
use support::{models_ready, required, root as repo, run_ok};

fn chromium() -> Option<PathBuf> {
    let bin = std::env::var_os("VERBATIM_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"));
    let ok = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!required(), "no chromium: run `bash .ci/setup.sh`");
        eprintln!("skipping: no chromium (bash .ci/setup.sh installs Debian's)");
        return None;
    }
    Some(bin)
}

fn verbatim(args: &[&str], root: &Path) -> String {
    let out = run_ok(support::verbatim().args(args).arg(root));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs headless Chromium over `page` with the flags CI uses, plus `extra`.
fn chrome(bin: &Path, profile: &Path, page: &Path, extra: &[String]) -> String {
    let mut out = Command::new(bin);
    out.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(format!("file://{}", page.display()));
    String::from_utf8_lossy(&run_ok(&mut out).stdout).into_owned()
}

/// URLs the page itself asked for: the net log's request starts whose
/// initiator is the page (Chromium's own background traffic has none).
fn page_requests(net_log: &Path) -> Vec<String> {
    let log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net_log).unwrap()).expect("a complete net log");
    let mut urls = Vec::new();
    for e in log["events"].as_array().expect("net log events") {
        let p = &e["params"];
        let (Some(url), Some(initiator)) = (p["url"].as_str(), p["initiator"].as_str()) else {
            continue;
        };
        if initiator != "not an origin" && !url.starts_with("file:") && !url.starts_with("data:") {
            urls.push(url.to_string());
        }
    }
    urls
}

#[test]
fn demo_report_renders_in_chromium_with_every_section_and_no_requests() {
    let Some(bin) = chromium() else { return };
    if !models_ready() {
        eprintln!("skipping: run `bash models/setup.sh` (the demo embeds comments)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    let stdout = verbatim(&["demo", "--output-root"], &root);
    let page = root.join("report.html");
    assert!(
        stdout.contains(&format!("{}", page.display())),
        "the demo prints the report's path: {stdout}"
    );

    // The DOM after Chromium parsed and laid out the page.
    let profile = dir.path().join("profile");
    let dom = chrome(&bin, &profile, &page, &["--dump-dom".into()]);
    for (id, title) in SECTIONS {
        let at = dom
            .find(&format!("<section id=\"{id}\">"))
            .unwrap_or_else(|| panic!("section {id} missing"));
        let body = &dom[at..];
        let end = body.find("</section>").unwrap_or(body.len());
        assert!(body[..end].contains(title), "{id} has no title");
        assert!(end > 300, "section {id} is nearly empty: {}", &body[..end]);
    }
    assert!(dom.matches("<svg").count() >= 4, "charts are inline SVG");
    // "Did we answer?" shows real numbers from the demo's CRM events.
    for part in [
        "Time to a first answer, per priority",
        "Overdue with no answer",
        "Customers who came back with the same complaint",
        "Asked, acted",
    ] {
        assert!(dom.contains(part), "section 7 lacks {part:?}");
    }
    assert!(dom.contains("not enough data") || dom.contains("<td>1</td>"));

    // Screenshot with a network log: nothing may leave the page.
    let shot = dir.path().join("report.png");
    let net = dir.path().join("net.json");
    chrome(
        &bin,
        &profile,
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1000,2400".into(),
            format!("--log-net-log={}", net.display()),
        ],
    );
    let requests = page_requests(&net);
    assert!(requests.is_empty(), "the page made requests: {requests:?}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 50_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    // Narrow screens: nothing but the wide tables' own boxes scrolls
    // sideways. Headless Chromium lays a page out at least 500 px wide
    // (asked for 390), so this checks the page is no wider than that
    // window. A copy of the page with a one-line script (the page's CSP
    // forbids scripts) reports both widths in its title.
    let html = std::fs::read_to_string(&page).unwrap();
    let probe = html
        .replacen(
            "<meta http-equiv=\"Content-Security-Policy\"",
            "<meta name=\"x-csp-removed\"",
            1,
        )
        .replacen(
            "</body>",
            "<script>document.title='W'+document.documentElement.scrollWidth+' I'+window.innerWidth</script></body>",
            1,
        );
    let probe_page = dir.path().join("phone.html");
    std::fs::write(&probe_page, probe).unwrap();
    let phone = chrome(
        &bin,
        &profile,
        &probe_page,
        &["--window-size=390,844".into(), "--dump-dom".into()],
    );
    let widths: Vec<u32> = phone
        .split("<title>W")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .map(|t| {
            t.split(" I")
                .filter_map(|w| w.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [scroll, inner] = widths[..] else {
        panic!("no widths in the probe's title: {widths:?}")
    };
    assert!(inner <= 500, "window {inner} px");
    assert!(
        scroll <= inner,
        "the page is {scroll} px wide in a {inner} px window"
    );
    if std::env::var("VERBATIM_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(repo().join("docs")).unwrap();
        std::fs::write(repo().join("docs/report.png"), &png).unwrap();
    }
}

#[test]
fn the_net_log_check_sees_a_page_that_fetches() {
    // The check above must be able to fail: a page with an external image
    // (no CSP) shows up as a request.
    let Some(bin) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("leaky.html");
    std::fs::write(
        &page,
        "<html><body><img src=\"http://report-test.invalid/pixel.png\"></body></html>",
    )
    .unwrap();
    let net = dir.path().join("net.json");
    chrome(
        &bin,
        &dir.path().join("profile"),
        &page,
        &[
            format!("--screenshot={}", dir.path().join("s.png").display()),
            format!("--log-net-log={}", net.display()),
        ],
    );
    let requests = page_requests(&net);
    assert!(
        requests.iter().any(|u| u.contains("report-test.invalid")),
        "{requests:?}"
    );
}

/// Ingests a labelled fixture with the demo pipeline into `root` and
/// returns the report's staff scorecard (`report_args` added).
fn ingest_scorecard(fixture: &str, root: &Path, report_args: &[&str]) -> Vec<serde_json::Value> {
    verbatim(
        &[
            "ingest",
            fixture,
            "--pipeline",
            "pipelines/demo.toml",
            "--output-root",
        ],
        root,
    );
    let mut args = vec!["report", "--format", "json"];
    args.extend_from_slice(report_args);
    args.push("--output-root");
    let r: serde_json::Value = serde_json::from_str(&verbatim(&args, root)).unwrap();
    r["scorecard"]["staff"].as_array().unwrap().clone()
}

/// The scorecard row of `key`.
fn row_of<'a>(staff: &'a [serde_json::Value], key: &str) -> &'a serde_json::Value {
    staff
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("{key} missing: {staff:?}"))
}

/// A scorecard row's `negative` or `corrected` rate.
fn rate(s: &serde_json::Value, which: &str) -> f64 {
    s[which]["rate"].as_f64().unwrap()
}

#[test]
fn product_complaints_do_not_count_against_the_person() {
    if !models_ready() {
        eprintln!("skipping: run `bash models/setup.sh`");
        return;
    }
    // S-PRODUCT: 12 comments, all negative, all about the product (crashing
    // apps, broken routers). S-RUDE: 10 of 12 are rude-staff complaints.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let staff = ingest_scorecard("tests/fixtures/scorecard.jsonl", &root, &[]);
    let get = |k: &str| row_of(&staff, k);
    let product = get("S-PRODUCT");
    assert_eq!(product["comments"], 12);
    assert!(rate(product, "negative") >= 0.75, "{product}");
    assert!(rate(product, "corrected") <= 0.1, "{product}");
    assert_eq!(
        product["rank"], 1,
        "fewest staff-aimed negatives ranks first"
    );
    let rude = get("S-RUDE");
    assert!(rate(rude, "corrected") >= 0.6, "{rude}");
    assert!(
        rude["corrected"]["low"].as_f64().unwrap() > product["corrected"]["high"].as_f64().unwrap(),
        "the intervals separate the two: {rude} {product}"
    );
    // --since/--until keep the days in the window only (event dates 1-9
    // October; 5-7 October hold 3 of each person's 12).
    let window = verbatim(
        &[
            "report",
            "--format",
            "json",
            "--since",
            "2026-10-05",
            "--until",
            "2026-10-07",
            "--min-comments",
            "1",
            "--output-root",
        ],
        &root,
    );
    let w: serde_json::Value = serde_json::from_str(&window).unwrap();
    assert_eq!(w["overview"]["comments"], 6, "{}", w["overview"]);
    assert_eq!(w["overview"]["first_day"], "2026-10-05");
    assert_eq!(w["overview"]["last_day"], "2026-10-07");
    // Markdown carries the same rows.
    let md = verbatim(&["report", "--format", "md", "--output-root"], &root);
    assert!(md.contains("| 1 | S-PRODUCT | 12 |"), "{md}");
}

/// Issue 13's fair-blame bar: praise for a person joined to a complaint
/// about the product ("The engineer was great, but the app keeps
/// crashing"; "Мастер был вежлив…, но роутер до сих пор не работает") never
/// counts against the person, in English or Russian, though the comments'
/// overall sentiment is often negative; the reverse ("the food was
/// excellent, but our waiter ignored us") does count.
#[test]
fn praise_beside_a_product_complaint_never_lowers_the_score() {
    if !models_ready() {
        eprintln!("skipping: run `bash models/setup.sh`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let staff = ingest_scorecard(
        "tests/fixtures/scorecard_mixed.jsonl",
        &root,
        &["--min-comments", "1"],
    );
    let get = |k: &str| row_of(&staff, k);
    // 6 English and 6 Russian comments, each praising S-PRAISED and
    // complaining about the product.
    let praised = get("S-PRAISED");
    assert_eq!(praised["comments"], 12, "{praised}");
    assert_eq!(rate(praised, "corrected"), 0.0, "{praised}");
    assert!(
        rate(praised, "negative") > 0.0,
        "the uncorrected score punishes these comments: {praised}"
    );
    // The control: staff complaints beside product praise count.
    let blamed = get("S-BLAMED");
    assert_eq!(blamed["comments"], 3, "{blamed}");
    assert!(rate(blamed, "corrected") >= 2.0 / 3.0, "{blamed}");
    assert_eq!(blamed["rank"], 2, "{staff:?}");
}
