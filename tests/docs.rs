//! The documentation holds together: every relative link in README.md and docs/ resolves to a
//! file of the repository, every `#anchor` to a heading of its page, and the README stays short
//! enough to read in one sitting.

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("BENCHMARKS.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The targets of the Markdown links `[text](target)` of `text`, outside fenced code.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// Why `target`, linked from `page`, does not resolve; `None` when it does.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:")
    {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().expect("page has a folder").join(path)
    };
    if !file.exists() {
        return Some(format!("{target}: no file {}", file.display()));
    }
    let anchor = anchor?;
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    if common::heading_anchors(&text).contains(anchor) {
        None
    } else {
        Some(format!("{target}: no heading with anchor #{anchor}"))
    }
}

#[test]
fn every_link_in_the_docs_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        for target in links(&text) {
            checked += 1;
            if let Some(p) = broken(&page, &target) {
                problems.push(format!(
                    "{}: {p}",
                    page.strip_prefix(root()).unwrap_or(&page).display()
                ));
            }
        }
    }
    assert!(checked > 40, "only {checked} links found");
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_broken_links() {
    let page = root().join("README.md");
    assert!(broken(&page, "docs/metrics.md#journey-families").is_none());
    assert!(broken(&page, "docs/metrics.md#no-such-heading").is_some());
    assert!(broken(&page, "docs/nope.md").is_some());
    assert!(broken(&page, "#what-is-measured").is_none());
    assert_eq!(
        links("see [a](x.md#y) and [b](#z)\n```\n[c](not-a-link)\n```\n"),
        ["x.md#y", "#z"]
    );
    let a = common::heading_anchors(
        "## Runbook\n### Runbook: InferprobeProbesFailing\n## Runbook\n```\n# not\n```\n",
    );
    assert_eq!(
        a.into_iter().collect::<Vec<_>>(),
        ["runbook", "runbook-1", "runbook-inferprobeprobesfailing"]
    );
}

#[test]
fn the_readme_is_a_first_read() {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = text.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; move detail into docs/"
    );
    // The two quick-start commands come first.
    let first_block = text.split("```sh").nth(1).expect("a sh block");
    assert!(first_block.contains("cargo run --release -- run --config.file config/demo.yml"));
    assert!(first_block.contains("cargo test --locked"));
}
