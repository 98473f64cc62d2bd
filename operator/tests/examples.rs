//! Every file in `examples/` renders (the real validate and build steps, no
//! cluster), and the result matches its snapshot in `tests/snapshots/`.
//! Review changes with `cargo insta review`, or accept them all with
//! `INSTA_UPDATE=always cargo test -p wharf-operator --test examples`.

mod example_files;

use example_files::{examples, settings};
use wharf_operator::render::render;

#[test]
fn every_example_renders_as_its_snapshot() {
    let files = examples();
    assert!(files.len() >= 5, "one example per storage and auth kind, and a mirror");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read example");
        let rendered = render(&text, "team-a", &settings()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_stem().and_then(|s| s.to_str()).expect("file name").to_string();
        insta::assert_snapshot!(name, rendered);
    }
}

#[test]
fn every_example_advertises_a_fully_qualified_host() {
    for path in examples() {
        let text = std::fs::read_to_string(&path).expect("read example");
        let rendered = render(&text, "team-a", &settings()).expect("renders");
        assert!(!rendered.contains("localhost"), "{}: localhost in the output", path.display());
        assert!(!rendered.contains("127.0.0.1"), "{}: loopback in the output", path.display());
        // Every example advertises exactly one host (config.yml's http.host),
        // and a URL realm too when the token service is on: a loop over no
        // lines would prove nothing.
        let hosts: Vec<&str> = rendered.lines().filter(|l| l.trim_start().starts_with("host: http")).collect();
        assert_eq!(hosts.len(), 1, "{}: one advertised http.host, found {hosts:?}", path.display());
        let realms = rendered.lines().filter(|l| l.trim_start().starts_with("realm: http"));
        for line in hosts.into_iter().chain(realms) {
            let host = line.split("://").nth(1).expect("url");
            assert!(host.split(['/', ':']).next().is_some_and(|h| h.contains('.')), "{}: {line}", path.display());
        }
    }
}
