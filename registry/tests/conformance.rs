//! The OCI distribution-spec conformance suite against a running
//! wharf-registry, in both versions scripts/tools.sh builds: the current
//! rewrite (`oci-conformance.test`) and the spec v1.1-era Ginkgo suite
//! (`oci-conformance-legacy.test`), with all four workflows on: pull, push,
//! content discovery and content management. Each passes only with exit
//! status 0, a junit report of one or more tests, zero failures, and every
//! workflow run: a skipped spec must be one listed below with its reason.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// The suites' own configuration, as the legacy (spec v1.1.x) variables plus
/// the version the rewritten suite is asked to hold the registry to. Each
/// suite ignores the other's variables.
fn conformance_env(root_url: &str, results: &Path) -> Vec<(String, String)> {
    [
        ("OCI_ROOT_URL", root_url),
        ("OCI_NAMESPACE", "conformance/repo1"),
        ("OCI_CROSSMOUNT_NAMESPACE", "conformance/repo2"),
        ("OCI_TEST_PULL", "1"),
        ("OCI_TEST_PUSH", "1"),
        ("OCI_TEST_CONTENT_DISCOVERY", "1"),
        ("OCI_TEST_CONTENT_MANAGEMENT", "1"),
        ("OCI_HIDE_SKIPPED_WORKFLOWS", "0"),
        ("OCI_DEBUG", "0"),
        ("OCI_VERSION", "1.1"),
        // The rewrite leaves upload cancel off unless asked.
        ("OCI_API_BLOBS_UPLOAD_CANCEL", "1"),
        // The legacy suite checks a mount without `from` only when told
        // whether the registry discovers the source itself (it does not).
        ("OCI_AUTOMATIC_CROSSMOUNT", "false"),
        ("OCI_REPORT_DIR", results.to_str().unwrap()),
        ("OCI_RESULTS_DIR", results.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

struct Junit {
    tests: u64,
    failures: u64,
    errors: u64,
    /// (test name, message) of every failed test case.
    failed: Vec<(String, String)>,
    /// Names of the skipped test cases.
    skipped: Vec<String>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(tag[at..].split('"').next()?.to_string())
}

fn unescape(s: &str) -> String {
    s.replace("&#xA;", "\n")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn parse_junit(xml: &str) -> Junit {
    let head_at = xml.find("<testsuites").expect("junit.xml has no <testsuites>");
    let head = &xml[head_at..head_at + xml[head_at..].find('>').unwrap()];
    let num = |n: &str| attr(head, n).map_or(0, |v| v.parse::<u64>().unwrap_or_else(|_| panic!("{n}={v}")));
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for case in xml.split("<testcase ").skip(1) {
        let open = format!(" {}", &case[..case.find('>').unwrap_or(case.len())]);
        let open = open.as_str();
        let status = attr(open, "status").unwrap_or_default();
        let case_body = &case[..case.find("</testcase>").unwrap_or(case.len())];
        if status == "skipped" || case_body.contains("<skipped") {
            skipped.push(unescape(&attr(open, "name").unwrap_or_default()));
            continue;
        }
        if status == "failure" || status == "error" || case.contains("<failure") || case.contains("<error") {
            let name = unescape(&attr(open, "name").unwrap_or_default());
            let msg = case
                .split("<system-out>")
                .nth(1)
                .and_then(|s| s.split("</system-out>").next())
                .or_else(|| case.split("message=\"").nth(1).and_then(|s| s.split('"').next()))
                .map(unescape)
                .unwrap_or_default();
            failed.push((name, msg));
        }
    }
    Junit { tests: num("tests"), failures: num("failures"), errors: num("errors"), failed, skipped }
}

/// Specs the rewritten suite skips with every workflow on, by a substring
/// of the spec's name, and why.
const EXPECTED_SKIPS: &[(&str, &str)] = &[(
    "mount anonymous/blob-mount-anonymous",
    "a mount without `from` (a MAY) answers 202 and the suite falls back to POST+PUT: wharf, like registry:2, \
     mounts only from a named repository",
)];

/// Specs the v1.1-era suite skips with every workflow on, and why.
const EXPECTED_SKIPS_LEGACY: &[(&str, &str)] = &[
    ("Pull Setup Get tag name from environment", "setup for a registry the suite cannot push to"),
    ("Populate registry with test tags (no push)", "setup for a registry the suite cannot push to"),
    (
        "Cross-mounting of nonexistent blob should yield session id",
        "the branch for a registry that answers 202 to the mount; wharf mounts (201) and the 201 branch runs",
    ),
    (
        "automatic content discovery enabled should return a 201",
        "wharf, like registry:2, does not mount without `from`; the `disabled should return a 202` spec runs",
    ),
];

#[test]
fn oci_conformance_all_workflows() {
    run_suite("oci-conformance.test", EXPECTED_SKIPS, &["junit.xml", "results.yaml", "report.html"]);
}

#[test]
fn oci_conformance_v1_1_legacy_suite() {
    run_suite("oci-conformance-legacy.test", EXPECTED_SKIPS_LEGACY, &["junit.xml", "report.html"]);
}

/// The same suite, all four workflows, with wharf on S3 (versitygw).
#[test]
fn oci_conformance_all_workflows_on_s3() {
    let s3 = common::s3::S3Server::start("conformance");
    let config = s3.registry_config("conformance", "/", "    chunksize: 5242880\n", "conformance-secret");
    run_suite_with("oci-conformance.test", EXPECTED_SKIPS, &["junit.xml", "results.yaml", "report.html"], Some(config));
}

fn run_suite(binary: &str, expected_skips: &[(&str, &str)], reports: &[&str]) {
    run_suite_with(binary, expected_skips, reports, None)
}

fn run_suite_with(binary: &str, expected_skips: &[(&str, &str)], reports: &[&str], config: Option<String>) {
    let suite = tool(binary);
    let dir = tempfile::Builder::new().prefix("wharf-conformance.").tempdir().unwrap();
    let config = config.unwrap_or_else(|| minimal_config(&dir.path().join("data")));
    let reg = RegistryProcess::start(registry_under_test(), &config);
    let results = dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();

    let mut cmd = Command::new(&suite);
    cmd.current_dir(&results).args(["-test.timeout", "9m"]);
    // Only this test's settings reach the suite.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OCI_") {
            cmd.env_remove(&k);
        }
    }
    cmd.envs(conformance_env(&format!("http://{}", reg.addr), &results));
    let out = run(&mut cmd, Duration::from_secs(600));

    let junit_path = results.join("junit.xml");
    let xml = std::fs::read_to_string(&junit_path)
        .unwrap_or_else(|e| panic!("no {}: {e}\n{}", junit_path.display(), out.describe()));
    let junit = parse_junit(&xml);
    let summary: String = out
        .stdout
        .lines()
        .filter(|l| l.contains("FAIL") || l.trim_start().starts_with("- "))
        .take(200)
        .collect::<Vec<_>>()
        .join("\n");
    let failures: String = junit
        .failed
        .iter()
        .take(60)
        .map(|(name, msg)| format!("* {name}\n    {}", msg.trim().replace('\n', "\n    ")))
        .collect::<Vec<_>>()
        .join("\n");
    let report = format!(
        "{} at {}: {} tests, {} failures, {} errors (exit {})\n--- failing specs ---\n{failures}\n--- suite summary (FAIL lines) ---\n{summary}\n--- suite stderr (tail) ---\n{}",
        reg.kind.name(),
        reg.addr,
        junit.tests,
        junit.failures,
        junit.errors,
        out.status,
        out.stderr.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"),
    );
    eprintln!("{binary}: {} ({} skipped)", report.lines().next().unwrap(), junit.skipped.len());
    assert!(junit.tests > 0, "the suite ran no test\n{report}");
    assert!(junit.failures == 0 && junit.errors == 0 && junit.failed.is_empty(), "{report}");
    assert!(out.ok(), "the suite exited with {} although junit.xml records no failure\n{report}", out.status);
    for name in reports {
        assert!(results.join(name).exists(), "suite report {name} missing");
    }
    // Every workflow ran: each skipped spec is an expected one, and each
    // expected skip still happens (else the list is stale).
    let unexpected: Vec<&String> =
        junit.skipped.iter().filter(|s| !expected_skips.iter().any(|(want, _)| s.contains(want))).collect();
    assert!(unexpected.is_empty(), "{binary}: specs skipped that should have run: {unexpected:#?}\n{report}");
    for (want, why) in expected_skips {
        assert!(
            junit.skipped.iter().any(|s| s.contains(want)),
            "{binary}: expected skip `{want}` ({why}) did not happen"
        );
    }
}
