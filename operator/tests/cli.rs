//! The operator binary's commands as users and the benchmarks call them.
//! `render` once failed at argument parsing (two flags named `--namespace`),
//! which no test noticed.

use std::process::Command;

fn operator(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf-operator")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn render_prints_the_children_in_the_namespace_asked_for() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/registry-emptydir.yaml");
    let (ok, out, err) = operator(&["render", "--cluster-domain", "cluster.local", "-f", example, "-n", "team-a"]);
    assert!(ok, "render failed: {err}");
    assert!(out.contains("kind: Deployment") && out.contains("namespace: team-a"), "{out}");
    // The operator's own namespace is a separate flag.
    let (ok, _, err) = operator(&["render", "--operator-namespace", "ops", "-f", example]);
    assert!(ok, "{err}");
}

#[test]
fn crds_print() {
    let (ok, out, err) = operator(&["crds"]);
    assert!(ok, "{err}");
    assert!(out.contains("registries.wharf.dev") && out.contains("registrymirrors.wharf.dev"));
}
