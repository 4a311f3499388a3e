//! The Kubernetes manifests: the NATS configuration they ship is the
//! project's, the kustomization renders every role with its own NATS user,
//! a three-node NATS with JetStream, scrape targets, alerts, autoscalers and
//! network policies; offline validators accept every manifest; and the
//! dashboard and alerts name only metrics that exist.
//!
//! The validators (kubernetes-validate, checkov, and PyYAML + jsonschema for
//! the custom resources' schemas in k8s/schemas) are installed by
//! `.ci/prepare` into target/tools/k8s-validate. Where one is missing a test
//! fails in CI (`CI=true`) and skips loudly elsewhere.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const ROLES: [&str; 6] = [
    "match-host",
    "matchmaker",
    "gateway",
    "archiver",
    "presence",
    "notifier",
];

/// A tool from target/tools/k8s-validate (where .ci/prepare installs it) or
/// the PATH; `None` (after failing in CI) when neither has it.
fn tool(name: &str) -> Option<PathBuf> {
    let local = root().join("target/tools/k8s-validate/bin").join(name);
    if local.exists() {
        return Some(local);
    }
    let on_path = Command::new(name).arg("--version").output().is_ok();
    if on_path {
        return Some(PathBuf::from(name));
    }
    missing(&format!("{name} (run .ci/prepare)"));
    None
}

fn missing(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is missing in CI: .ci/prepare installs it");
    }
    eprintln!("SKIPPED LOUDLY: {what} is not installed");
}

/// The kustomization rendered: by `kubectl kustomize` where kubectl is
/// installed (`true`), else the resource files kustomization.yaml lists,
/// concatenated (`false`: no generated ConfigMaps, no namespace transform).
fn render() -> (String, bool) {
    if let Ok(out) = Command::new("kubectl")
        .args(["kustomize", "k8s"])
        .current_dir(root())
        .output()
    {
        assert!(
            out.status.success(),
            "kubectl kustomize k8s failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return (String::from_utf8(out.stdout).expect("utf-8"), true);
    }
    eprintln!("kubectl is not installed: rendering k8s/ from kustomization.yaml's resources");
    let kustomization = read("k8s/kustomization.yaml");
    let mut yaml = String::new();
    let mut in_resources = false;
    for line in kustomization.lines() {
        if !line.starts_with(' ') && !line.starts_with('-') && !line.starts_with('#') {
            in_resources = line.trim_end() == "resources:";
            continue;
        }
        if let Some(file) = line.trim().strip_prefix("- ").filter(|_| in_resources) {
            yaml.push_str("---\n");
            yaml.push_str(&read(&format!("k8s/{file}")));
            yaml.push('\n');
        }
    }
    (yaml, false)
}

/// The rendered manifests in a file, for the validators.
fn rendered_file() -> PathBuf {
    let (yaml, _) = render();
    let path = std::env::temp_dir().join(format!("dashdice-k8s-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).expect("write the rendered manifests");
    path
}

#[test]
fn the_cluster_runs_the_projects_nats_configuration() {
    let project = std::fs::read(root().join("nats/nats-server.conf")).expect("nats config");
    let shipped = std::fs::read(root().join("k8s/nats-server.conf")).expect("k8s copy");
    assert!(
        project == shipped,
        "k8s/nats-server.conf must be a copy of nats/nats-server.conf (kustomize cannot read \
         files outside k8s/): cp nats/nats-server.conf k8s/"
    );
    // The cluster adds to it and changes nothing else.
    let cluster = read("k8s/nats-cluster.conf");
    assert!(cluster.contains("\ninclude ./nats-server.conf\n"));
    assert!(
        !cluster.contains("authorization"),
        "users stay in nats-server.conf"
    );
}

/// The nats-server binary the other tests use, if any.
fn nats_server() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("DASHDICE_NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let local = root().join("target/tools/nats/bin/nats-server");
    if local.exists() {
        return Some(local);
    }
    Command::new("nats-server")
        .arg("--version")
        .output()
        .ok()
        .map(|_| PathBuf::from("nats-server"))
}

#[test]
fn nats_server_accepts_the_cluster_configuration() {
    let Some(server) = nats_server() else {
        missing("nats-server");
        return;
    };
    for pod in ["nats-0", "nats-1", "nats-2"] {
        let out = Command::new(&server)
            .args(["-c", "k8s/nats-cluster.conf", "-t"])
            .env("POD_NAME", pod)
            .current_dir(root())
            .output()
            .expect("run nats-server -t");
        assert!(
            out.status.success(),
            "nats-server rejects k8s/nats-cluster.conf as {pod}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_kustomization_renders_every_role() {
    let (yaml, kustomized) = render();
    for (role, user) in ROLES.map(|r| (r, r)) {
        assert!(
            yaml.contains(&format!("- args:\n        - {role}\n"))
                || yaml.contains(&format!("args: [\"{role}\"]")),
            "{role} runs its role"
        );
        assert!(
            yaml.contains(&format!(
                "- name: DASHDICE_NATS_USER\n          value: {user}\n"
            )) || yaml.contains(&format!("{{ name: DASHDICE_NATS_USER, value: {user} }}")),
            "{role} connects as {user}"
        );
        assert!(
            yaml.contains(&format!("  {user}: {user}-dev\n")),
            "the dashdice-nats secret has {user}'s password"
        );
    }
    if !kustomized {
        eprintln!("SKIPPED LOUDLY: the checks of kustomize's output need kubectl");
        return;
    }
    // Each role sizes its Tokio pool: with no CPU limit it would start a
    // worker per core of the node.
    assert_eq!(
        yaml.matches("- name: TOKIO_WORKER_THREADS\n          value: \"2\"\n")
            .count(),
        6,
        "match-host, matchmaker, gateway, archiver, presence and notifier each set TOKIO_WORKER_THREADS"
    );
    // The archivers reach Google's Firestore (no emulator) with the
    // service-account key mounted from its secret.
    assert!(yaml.contains("DASHDICE_FIRESTORE_PROJECT: "));
    assert!(!yaml.contains("FIRESTORE_EMULATOR_HOST"));
    assert!(yaml.contains(
        "- name: GOOGLE_APPLICATION_CREDENTIALS\n          value: /var/run/secrets/dashdice/firestore/key.json\n"
    ));
    assert!(yaml.contains("name: dashdice-firestore\n"));
    assert!(yaml.contains("secretName: dashdice-firestore\n"));
    // The notifiers push through FCM with their key mounted from its secret.
    assert!(yaml.contains(
        "- name: DASHDICE_FCM_KEY\n          value: /var/run/secrets/dashdice/fcm/key.json\n"
    ));
    assert!(yaml.contains("name: dashdice-fcm\n"));
    assert!(yaml.contains("secretName: dashdice-fcm\n"));
    assert!(yaml.contains("namespace: dashdice"));
    assert!(
        yaml.contains("nats-server.conf: |"),
        "the NATS config is shipped"
    );
    assert!(
        yaml.contains("nats-cluster.conf: |"),
        "the cluster's additions are shipped beside it"
    );
    // The Grafana dashboard, for the dashboard sidecar, under a fixed name.
    assert!(yaml.contains("dashdice.json: |"));
    assert!(yaml.contains("grafana_dashboard: \"1\""));
    assert!(yaml.contains("name: dashdice-grafana-dashboard\n"));
}

/// The documents of a multi-document YAML stream.
fn documents(yaml: &str) -> Vec<&str> {
    yaml.split("\n---\n")
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect()
}

/// The rendered document of `kind` named `name`.
fn document<'a>(yaml: &'a str, kind: &str, name: &str) -> &'a str {
    documents(yaml)
        .into_iter()
        .find(|d| {
            d.lines().any(|l| l == format!("kind: {kind}"))
                && d.contains(&format!("\n  name: {name}\n"))
        })
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

#[test]
fn nats_is_a_three_node_jetstream_cluster_and_streams_get_three_copies() {
    let (yaml, kustomized) = render();
    if !kustomized {
        eprintln!("SKIPPED LOUDLY: needs kubectl");
        return;
    }
    let sts = document(&yaml, "StatefulSet", "nats");
    assert!(sts.contains("replicas: 3\n"));
    assert!(sts.contains("serviceName: nats-headless\n"));
    assert!(sts.contains("- /etc/nats/nats-cluster.conf\n"));
    assert!(sts.contains("requiredDuringSchedulingIgnoredDuringExecution"));
    assert!(sts.contains("volumeClaimTemplates:"));
    assert!(sts.contains("containerPort: 6222"));
    // The exporter sidecar with the endpoints the dashboard reads.
    assert!(sts.contains("image: natsio/prometheus-nats-exporter:"));
    for flag in ["-varz", "-connz", "-routez", "-subz", "-jsz=all"] {
        assert!(sts.contains(&format!("- {flag}\n")), "exporter flag {flag}");
    }
    let headless = document(&yaml, "Service", "nats-headless");
    assert!(headless.contains("clusterIP: None"));
    assert!(document(&yaml, "PodDisruptionBudget", "nats").contains("maxUnavailable: 1"));
    // Every role creates its streams with three copies.
    let config = document(&yaml, "ConfigMap", "dashdice-config");
    assert!(config.contains("DASHDICE_STREAM_REPLICAS: \"3\""));
}

#[test]
fn every_role_is_scraped_policed_and_the_queues_scale_on_their_lag() {
    let (yaml, _) = render();
    for role in ROLES {
        let monitor = document(&yaml, "PodMonitor", role);
        let (port, path) = if role == "gateway" {
            ("http", "/api/v1/metrics")
        } else {
            ("metrics", "/metrics")
        };
        assert!(
            monitor.contains(&format!("port: {port}")),
            "{role}'s PodMonitor port"
        );
        assert!(
            monitor.contains(&format!("path: {path}")),
            "{role}'s PodMonitor path"
        );
        let policy = document(&yaml, "NetworkPolicy", role);
        assert!(policy.contains("port: 4222"), "{role} may reach NATS");
        assert!(policy.contains("port: 6379"), "{role} may reach Redis");
        let https = policy.contains("port: 443");
        assert_eq!(
            https,
            matches!(role, "gateway" | "archiver" | "notifier"),
            "only the gateway (token keys), archiver (Firestore) and notifier (FCM) leave the cluster"
        );
    }
    assert!(document(&yaml, "PodMonitor", "nats").contains("port: nats-metrics"));
    assert!(document(&yaml, "NetworkPolicy", "default-deny").contains("podSelector: {}"));
    assert!(document(&yaml, "NetworkPolicy", "allow-dns").contains("port: 53"));
    assert!(document(&yaml, "NetworkPolicy", "nats").contains("port: 6222"));

    // KEDA scales on the streams and consumers the roles really use.
    use dashdice_proto::bus;
    for (role, stream, consumer) in [
        (
            "archiver",
            bus::RECORD_STREAM,
            bus::ARCHIVER_RECORDS_CONSUMER,
        ),
        ("notifier", bus::NOTIFY_STREAM, bus::NOTIFIER_CONSUMER),
    ] {
        let scaler = document(&yaml, "ScaledObject", role);
        assert!(scaler.contains("type: nats-jetstream"));
        assert!(
            scaler.contains(&format!("stream: {stream}\n")),
            "{role}'s stream"
        );
        assert!(
            scaler.contains(&format!("consumer: {consumer}\n")),
            "{role}'s consumer"
        );
        assert!(
            scaler.contains("account: $G"),
            "the config has users, no accounts"
        );
    }
    assert!(document(&yaml, "ScaledObject", "matchmaker").contains("dashdice_queue_tickets"));
    assert!(document(&yaml, "ScaledObject", "match-host").contains("dashdice_matches_live"));
    assert!(
        !yaml.contains("kind: HorizontalPodAutoscaler"),
        "KEDA owns the HPAs of the Deployments it scales"
    );
}

#[test]
fn kubernetes_validate_accepts_every_manifest_and_the_custom_resources_match_their_schemas() {
    let Some(validate) = tool("kubernetes-validate") else {
        return;
    };
    let Some(python) = tool("python") else {
        return;
    };
    let file = rendered_file();
    let out = Command::new(&validate)
        .arg("--strict")
        .arg("--quiet")
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !report.contains("ERROR"),
        "kubernetes-validate --strict:\n{report}"
    );
    // Custom kinds (PodMonitor, PrometheusRule, ScaledObject) are not
    // Kubernetes's: their schemas are vendored in k8s/schemas.
    let out = Command::new(&python)
        .arg(root().join("k8s/schemas/validate.py"))
        .arg(&file)
        .output()
        .expect("run k8s/schemas/validate.py");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "k8s/schemas/validate.py:\n{report}");
    for kind in ["PodMonitor", "PrometheusRule", "ScaledObject"] {
        assert!(
            report.contains(&format!("ok {kind}/")),
            "{kind} checked:\n{report}"
        );
    }
}

#[test]
fn checkov_finds_nothing_unexplained() {
    let Some(checkov) = tool("checkov") else {
        return;
    };
    // Findings are fixed, or skipped on the resource with a reason
    // (checkov.io/skipN: CKV_K8S_xx=why). No network: --skip-download.
    let out = Command::new(&checkov)
        .args([
            "-d",
            "k8s",
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "--skip-download",
        ])
        .current_dir(root())
        .output()
        .expect("run checkov");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "checkov -d k8s:\n{report}");
    assert!(
        report.contains("Failed checks: 0"),
        "checkov -d k8s:\n{report}"
    );
}

/// The metric names a PromQL expression reads (functions, aggregations,
/// keywords, label matchers, ranges, grouping labels, strings, numbers and
/// Grafana's `$variables` left out).
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Strings, then everything inside {...} and [...].
    let mut plain = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            _ => plain.push(c),
        }
        if c == '}' || c == ']' {
            plain.push(' ');
        }
    }
    let chars: Vec<char> = plain.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' || c.is_ascii_digit() || c == '.' {
            // A variable or a number (with its unit or exponent).
            i += 1;
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            if c == '(' && skip_group {
                // by (...), without (...), on (...), ignoring (...), group_left (...).
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
        let grouping = matches!(
            word.as_str(),
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        );
        if grouping {
            skip_group = next == Some('(');
            continue;
        }
        let keyword = matches!(
            word.as_str(),
            "and" | "or" | "unless" | "bool" | "offset" | "inf" | "nan" | "Inf" | "NaN"
        );
        // The word after, for `sum by (...) (...)` and `sum without (...)`.
        let rest: String = chars[i..].iter().collect();
        let next_word = rest.trim_start().split(|c: char| !ident(c)).next();
        let aggregation = matches!(next_word, Some("by" | "without"));
        if keyword || aggregation || next == Some('(') {
            continue;
        }
        names.insert(word);
    }
    names
}

/// Every metric dashdice exports (`names::...` in telemetry.rs, with
/// Prometheus's `_bucket`, `_count` and `_sum` for the histograms, and the
/// runtime's mode faults), the NATS exporter's (read off its collectors:
/// -varz, -connz, -routez, -subz, -jsz=all) and Prometheus's `up`.
fn known_metrics() -> HashSet<String> {
    let telemetry = read("host/service/src/telemetry.rs");
    let mut known = HashSet::new();
    let mut histogram = false;
    for line in telemetry.lines().map(str::trim) {
        if let Some(doc) = line.strip_prefix("///") {
            if doc.trim_start().starts_with("Histogram") {
                histogram = true;
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("pub const ")
            && let Some(name) = rest.split('"').nth(1)
        {
            known.insert(name.to_owned());
            if histogram {
                for suffix in ["_bucket", "_count", "_sum"] {
                    known.insert(format!("{name}{suffix}"));
                }
            }
        }
        histogram = false;
    }
    assert!(known.len() > 30, "read names:: from telemetry.rs");
    known.insert(dashdice_runtime::MODE_FAULTS.to_owned());
    for exporter in [
        "up",
        "gnatsd_varz_connections",
        "gnatsd_varz_slow_consumers",
        "gnatsd_varz_routes",
        "gnatsd_varz_in_msgs",
        "gnatsd_varz_out_msgs",
        "gnatsd_varz_in_bytes",
        "gnatsd_varz_out_bytes",
        "gnatsd_varz_subscriptions",
        "gnatsd_varz_mem",
        "gnatsd_varz_cpu",
        "gnatsd_connz_num_connections",
        "gnatsd_connz_total",
        "gnatsd_routez_num_routes",
        "gnatsd_subsz_num_subscriptions",
        "jetstream_server_jetstream_disabled",
        "jetstream_server_total_streams",
        "jetstream_server_total_consumers",
        "jetstream_server_total_messages",
        "jetstream_server_total_message_bytes",
        "jetstream_server_max_storage",
        "jetstream_stream_total_messages",
        "jetstream_stream_total_bytes",
        "jetstream_stream_last_seq",
        "jetstream_consumer_num_pending",
        "jetstream_consumer_num_ack_pending",
        "jetstream_consumer_num_redelivered",
        "jetstream_consumer_num_waiting",
        "jetstream_consumer_delivered_stream_seq",
        "jetstream_consumer_ack_floor_stream_seq",
    ] {
        known.insert(exporter.to_owned());
    }
    known
}

#[test]
fn the_metric_name_check_sees_what_a_query_reads() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, kind) (rate(dashdice_matchmaker_wait_seconds_bucket{kind="quick", x=~"a|b"}[$__rate_interval]))) > 1e3
           and on (job) deriv(max(dashdice_archiver_pending_records)[15m:1m]) >= 0 or absent(up{job="nats"} == 1)"#,
    );
    let expected: BTreeSet<String> = [
        "dashdice_matchmaker_wait_seconds_bucket",
        "dashdice_archiver_pending_records",
        "up",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, expected);
    let known = known_metrics();
    assert!(known.contains("dashdice_match_request_seconds_bucket"));
    assert!(
        !known.contains("dashdice_matches_live_bucket"),
        "a gauge has no buckets"
    );
    assert!(!known.contains("dashdice_matchs_live"));
}

/// `expr:` and `query:` values of a YAML file (inline or `|` blocks).
fn queries(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(value) = trimmed
            .strip_prefix("expr:")
            .or_else(|| trimmed.strip_prefix("query:"))
        else {
            continue;
        };
        let value = value.trim();
        if value == "|" || value == ">" {
            let indent = line.len() - trimmed.len();
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            out.push(block.join("\n"));
        } else {
            out.push(value.to_owned());
        }
    }
    out
}

#[test]
fn the_alerts_and_autoscalers_read_only_metrics_that_exist_and_link_their_runbook() {
    let known = known_metrics();
    let alerts = read("k8s/alerts.yaml");
    let mut exprs = queries(&alerts);
    assert!(exprs.len() >= 15, "read the alerts' expressions");
    exprs.extend(queries(&read("k8s/autoscaling.yaml")));
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                known.contains(&name),
                "{name} (in `{expr}`) is neither a names:: metric nor a known exporter metric"
            );
        }
    }
    // Every alert explains itself and links a section of the runbook.
    let runbook = read("docs/runbook.md");
    let anchors: HashSet<String> = runbook
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let blocks: Vec<&str> = alerts.split("- alert: ").skip(1).collect();
    assert!(blocks.len() >= 15);
    for block in blocks {
        let name = block.lines().next().unwrap_or_default().trim();
        for key in ["summary:", "description:", "runbook_url:"] {
            assert!(block.contains(key), "alert {name} has no {key}");
        }
        let url = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("runbook_url:"))
            .map(str::trim)
            .unwrap_or_default();
        let anchor = url.split_once("docs/runbook.md#").map(|(_, a)| a);
        assert_eq!(
            anchor,
            Some(name.to_lowercase().as_str()),
            "alert {name} links docs/runbook.md#{}",
            name.to_lowercase()
        );
        assert!(
            anchors.contains(&name.to_lowercase()),
            "docs/runbook.md has no section `{name}`"
        );
    }
}

#[test]
fn the_dashboard_is_valid_and_reads_only_metrics_that_exist() {
    let json = read("k8s/grafana/dashdice.json");
    let dashboard: serde_json::Value = serde_json::from_str(&json).expect("the dashboard parses");
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        panels.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
    }
    let mut ids = HashSet::new();
    let known = known_metrics();
    let mut titles = Vec::new();
    for panel in &panels {
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        let title = panel["title"].as_str().unwrap_or_default();
        if panel["type"] == "row" {
            titles.push(title.to_owned());
            continue;
        }
        assert!(
            panel["datasource"].is_object(),
            "panel {title:?} has no datasource"
        );
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("panel {title:?} has no targets"));
        for target in targets {
            let expr = target["expr"].as_str().filter(|e| !e.is_empty());
            let expr = expr.unwrap_or_else(|| panic!("a target of {title:?} has no expr"));
            for name in metric_names(expr) {
                assert!(
                    known.contains(&name),
                    "{name} (panel {title:?}) is neither a names:: metric nor a known exporter metric"
                );
            }
        }
    }
    for row in [
        "Players",
        "Queues",
        "Time to match",
        "Action latency",
        "Matches",
        "Faults",
        "JetStream lag",
        "NATS health",
    ] {
        assert!(
            titles.iter().any(|t| t == row),
            "the dashboard has a row {row:?}"
        );
    }
}
