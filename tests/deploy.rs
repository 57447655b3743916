//! `deploy/`: the Grafana dashboard and the Prometheus alert rules use only
//! metrics the job exports (README's table, which tests/operability.rs
//! checks against `/metrics`), and have the shape their tools load.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::{python_with, readme_metrics, root, run_ok};

/// Every `verbatim_*` name in `expr`, with histogram suffixes removed.
fn metrics_in(expr: &str) -> Vec<String> {
    let re = regex::Regex::new(r"verbatim_[a-z_]+").unwrap();
    re.find_iter(expr)
        .map(|m| {
            let n = m.as_str();
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
                .to_string()
        })
        .collect()
}

fn assert_exported(exprs: &[String], what: &str) -> BTreeSet<String> {
    let known: BTreeSet<String> = readme_metrics().into_iter().collect();
    let mut used = BTreeSet::new();
    for e in exprs {
        let names = metrics_in(e);
        assert!(!names.is_empty(), "{what}: {e} uses no verbatim metric");
        for n in names {
            assert!(
                known.contains(&n),
                "{what} uses {n}, which is not exported: {e}"
            );
            used.insert(n);
        }
    }
    used
}

#[test]
fn dashboard_uses_exported_metrics() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/verbatim.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut exprs = Vec::new();
    for p in panels {
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{p}");
        exprs.extend(
            targets
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string()),
        );
    }
    let used = assert_exported(&exprs, "the dashboard");
    // The signals README promises an on-call engineer are all on it.
    for m in [
        "verbatim_consumer_lag",
        "verbatim_end_to_end_seconds",
        "verbatim_ready",
        "verbatim_process_resident_memory_bytes",
        "verbatim_stage_seconds_total",
    ] {
        assert!(used.contains(m), "the dashboard has no panel on {m}");
    }
}

#[test]
fn alert_rules_load_and_use_exported_metrics() {
    let Some(py) = python_with("yaml") else {
        return;
    };
    let path = root().join("deploy/prometheus/alerts.yml");
    let out = run_ok(
        Command::new(py)
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            ])
            .arg(&path),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&serde_json::Value> = doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect();
    assert!(rules.len() >= 8);
    let mut names = BTreeSet::new();
    let mut exprs = Vec::new();
    let duration = regex::Regex::new(r"^\d+[smh]$").unwrap();
    for r in &rules {
        let name = r["alert"].as_str().expect("every rule is an alert");
        assert!(names.insert(name), "{name} twice");
        assert!(
            matches!(r["labels"]["severity"].as_str(), Some("page" | "warn")),
            "{name}: severity"
        );
        for a in ["summary", "description"] {
            assert!(
                r["annotations"][a].as_str().is_some_and(|s| s.len() > 10),
                "{name}: {a}"
            );
        }
        if let Some(f) = r.get("for") {
            let f = f.as_str().expect("for is a duration");
            assert!(duration.is_match(f), "{name}: for {f}");
        }
        let e = r["expr"].as_str().expect("expr");
        assert_eq!(
            e.matches('(').count(),
            e.matches(')').count(),
            "{name}: {e}"
        );
        exprs.push(e.to_string());
    }
    let used = assert_exported(&exprs, "the alert rules");
    // Each failure the job's probes and logs report has an alert.
    for m in [
        "verbatim_ready",
        "verbatim_brokers_up",
        "verbatim_consumer_lag",
        "verbatim_offset_resets_total",
        "verbatim_last_commit_timestamp_seconds",
        "verbatim_process_resident_memory_bytes",
    ] {
        assert!(used.contains(m), "no alert uses {m}");
    }
}

#[test]
fn kubernetes_manifest_runs_a_valid_pipeline_with_the_jobs_probes() {
    let Some(py) = python_with("yaml") else {
        return;
    };
    let path = root().join("deploy/kubernetes/verbatim.yaml");
    let out = run_ok(
        Command::new(py)
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
            ])
            .arg(&path),
    );
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k} in the manifest"))
    };
    let toml = kind("ConfigMap")["data"]["pipeline.toml"]
        .as_str()
        .expect("pipeline.toml in the ConfigMap");
    let deploy = kind("Deployment");
    assert!(deploy["spec"]["replicas"].as_u64().unwrap() >= 2);
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    // The pipeline the pods run is valid, writes a bucket, and serves
    // metrics on the port the probes and the scrape annotation name.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pipeline.toml");
    std::fs::write(&p, toml).unwrap();
    let check = run_ok(
        Command::new(env!("CARGO_BIN_EXE_verbatim"))
            .arg("check")
            .arg(&p)
            .current_dir(root()),
    );
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(shown.contains("root = \"s3://"), "{shown}");
    let cfg = verbatim::config::PipelineConfig::from_toml(toml, &p).unwrap();
    let listen = cfg.metrics.listen.expect("metrics.listen");
    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port as u64));
    let annotations = &deploy["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            c[probe]["httpGet"]["port"], c["ports"][0]["name"],
            "{probe}"
        );
    }
    // The container runs that pipeline, mounted from the ConfigMap.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["run", "--pipeline"]);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "pipeline")
        .expect("the pipeline volume is mounted");
    assert!(args[2].starts_with(mount["mountPath"].as_str().unwrap()));
    // The spool is a volume of its own.
    let spool = cfg.output.spool_dir.expect("output.spool_dir");
    assert!(c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| spool.starts_with(m["mountPath"].as_str().unwrap())));
}
