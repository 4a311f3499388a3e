//! The Kubernetes manifests: the NATS configuration they ship is the
//! project's, and the kustomization renders every role with its own NATS user.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
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
}

#[test]
fn the_kustomization_renders_every_role() {
    let Ok(out) = Command::new("kubectl")
        .args(["kustomize", "k8s"])
        .current_dir(root())
        .output()
    else {
        eprintln!("SKIPPED LOUDLY: kubectl is not installed, so k8s/ was not rendered");
        return;
    };
    assert!(
        out.status.success(),
        "kubectl kustomize k8s failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    for (role, user) in [
        ("match-host", "match-host"),
        ("matchmaker", "matchmaker"),
        ("gateway", "gateway"),
        ("archiver", "archiver"),
        ("presence", "presence"),
        ("notifier", "notifier"),
    ] {
        assert!(
            yaml.contains(&format!("- args:\n        - {role}\n")),
            "{role} runs its role"
        );
        assert!(
            yaml.contains(&format!(
                "- name: DASHDICE_NATS_USER\n          value: {user}\n"
            )),
            "{role} connects as {user}"
        );
        assert!(
            yaml.contains(&format!("  {user}: {user}-dev\n")),
            "the dashdice-nats secret has {user}'s password"
        );
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
}
