//! Config loading: every fixture in `config/testdata/` and the shipped example configs.
//!
//! `NAME.bad.yml` must fail with exactly the text in `NAME.bad.yml.expected` (the `Display` of
//! the errors, with the file's base name as source name); `NAME.good.yml` must load. Set
//! `INFERPROBE_BLESS=1` to rewrite the `.expected` files after an intended message change, then
//! review the diff.

use std::path::{Path, PathBuf};

use inferprobe::config::{self, Environment, Loaded};

/// The environment the fixtures see, independent of the process environment.
fn fixture_var(name: &str) -> Option<String> {
    match name {
        "INFERPROBE_TEST_KEY" => Some("sk-fixture-0123456789".to_string()),
        "INFERPROBE_TEST_EMPTY" => Some("  ".to_string()),
        _ => None,
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/testdata")
}

fn load_fixture(path: &Path) -> Result<Loaded, config::ConfigErrors> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    config::load_str_with(
        &text,
        &name,
        &Environment {
            base_dir: &testdata(),
            var: &fixture_var,
        },
    )
}

fn fixtures(suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

#[test]
fn bad_fixtures_fail_with_the_expected_errors() {
    let bless = std::env::var_os("INFERPROBE_BLESS").is_some();
    let files = fixtures(".bad.yml");
    assert!(files.len() >= 10, "fixtures missing: {files:?}");
    let mut failures = Vec::new();
    for path in files {
        let expected_path = PathBuf::from(format!("{}.expected", path.display()));
        let actual = match load_fixture(&path) {
            Ok(_) => format!("{} loaded without errors", path.display()),
            Err(e) => format!("{e}\n"),
        };
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "{}\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_fixtures_load() {
    let files = fixtures(".good.yml");
    assert!(!files.is_empty());
    for path in files {
        if let Err(e) = load_fixture(&path) {
            panic!("{e}");
        }
    }
}

#[test]
fn every_bad_fixture_has_an_expected_file_and_vice_versa() {
    for path in fixtures(".bad.yml") {
        assert!(
            PathBuf::from(format!("{}.expected", path.display())).exists(),
            "{} has no .expected file",
            path.display()
        );
    }
    for path in fixtures(".bad.yml.expected") {
        let yml = path
            .to_string_lossy()
            .trim_end_matches(".expected")
            .to_string();
        assert!(Path::new(&yml).exists(), "{} has no .yml", path.display());
    }
}
