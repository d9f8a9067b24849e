//! The environment policy of the snapshot tests (tests/support/environment.rs), and the records it
//! reads: `tests/environments.toml` and the `NAME@TAGS.snap` variants.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::environment::*;

#[test]
fn every_variant_names_differences_of_a_verified_configuration() {
    let envs = environments();
    let covered: BTreeSet<&String> = envs.verified.iter().flatten().collect();
    let keys: BTreeSet<&str> = vmbook::environment::Environment::detect()
        .facts()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for key in envs.reference.keys() {
        assert!(
            keys.contains(key.as_str()),
            "tests/environments.toml: unknown key `{key}`"
        );
    }
    for entry in std::fs::read_dir(snapshot_dir()).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some((_, tags)) = file.strip_suffix(".snap").and_then(|f| f.split_once('@')) else {
            continue;
        };
        for tag in split_tags(tags) {
            assert!(
                covered.contains(&tag),
                "{file}: `{tag}` is in no verified configuration of tests/environments.toml"
            );
        }
    }
}

fn envs(verified: &[&str]) -> Environments {
    Environments {
        reference: BTreeMap::new(),
        verified: verified.iter().map(|t| split_tags(t)).collect(),
    }
}

fn snapshot(dir: &Path, name: &str, content: &str) {
    std::fs::write(
        dir.join(format!("{name}.snap")),
        format!("---\nsource: x\n---\n{content}"),
    )
    .unwrap();
}

#[test]
fn each_machine_is_compared_with_the_snapshot_of_its_own_differences() {
    let dir = std::env::temp_dir().join(format!("vmbook-env-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    snapshot(&dir, "ch__x", "finding: a — confirmed (1)\n");
    snapshot(
        &dir,
        "ch__x@frames-hidden",
        "finding: a — not checked (no cap)\n",
    );
    let e = envs(&["frames-hidden", "thp-always"]);
    let tags = |t: &str| split_tags(t);
    let exact = |m: &str| match expectation(&e, &dir, "ch__x", &tags(m)) {
        Expectation::Exact(n) => n,
        Expectation::FindingsOnly(why) => format!("findings: {why}"),
    };
    assert_eq!(exact(""), "ch__x");
    assert_eq!(exact("thp-always"), "ch__x");
    assert_eq!(exact("frames-hidden+thp-always"), "ch__x@frames-hidden");
    assert!(exact("page-size-16384").starts_with("findings: "));

    // Findings check: a not-checked claim is explained by the recorded frames-hidden variant,
    // not by an unrelated difference; REFUTED always fails.
    let hidden = "finding: a — not checked (no cap)\n";
    assert!(findings_check(&e, &dir, "ch__x", &tags("frames-hidden"), hidden).is_empty());
    assert_eq!(
        findings_check(&e, &dir, "ch__x", &tags("thp-always"), hidden).len(),
        1
    );
    let refuted = "finding: a — REFUTED (0)\n";
    assert!(!findings_check(&e, &dir, "ch__x", &tags("page-size-16384"), refuted).is_empty());
    let missing = "no findings\n";
    assert!(!findings_check(&e, &dir, "ch__x", &tags("thp-always"), missing).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
