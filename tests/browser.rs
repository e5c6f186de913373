//! The status page in a real browser: headless Chromium (Debian's `chromium` package) loads the
//! page of a daemon probing the simulator, the test checks the DOM the browser built (rows,
//! sparklines with successes and failures, a waterfall with one bar per token gap) and saves
//! screenshots under `target/tmp/browser/` (CI keeps them as artifacts). Both pages also pass a
//! strict well-formedness check: every element closed (void elements self-closed), attributes
//! quoted, entities known, ids unique.
//!
//! Without Chromium the test is skipped with a message, except under `CI=true`, where it fails.
//! `INFERPROBE_CHROMIUM` names another binary.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{eventually, get, sample};
use inferprobe::commands;

const TOKENS: usize = 50;

fn chromium() -> Option<PathBuf> {
    let bin = std::env::var_os("INFERPROBE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"));
    let found = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return Some(bin);
    }
    let msg = format!(
        "no {} to test the status page in (apt-get install chromium)",
        bin.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: {msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Runs headless Chromium with `args` then `url`; returns its standard output.
fn browse(bin: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks that `html` is well-formed as XML would require (which valid HTML5 written this way
/// also is): tags balanced and properly nested, void elements self-closed, attribute values
/// quoted, `&` only in known entities, no `<` in text, ids unique.
fn check_well_formed(html: &str) -> Result<(), String> {
    const ENTITIES: [&str; 5] = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"];
    const VOID: [&str; 4] = ["meta", "br", "line", "polyline"];
    let body = html
        .strip_prefix("<!DOCTYPE html>")
        .ok_or("missing <!DOCTYPE html>")?;
    let mut stack: Vec<String> = Vec::new();
    let mut ids = HashSet::new();
    let mut rest = body;
    while !rest.is_empty() {
        let next = rest.find('<').unwrap_or(rest.len());
        check_text(&rest[..next], &ENTITIES)?;
        rest = &rest[next..];
        if rest.is_empty() {
            break;
        }
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closed = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("bad tag name {name:?}"));
        }
        let mut a = attrs.trim();
        while !a.is_empty() {
            let eq = a
                .find("=\"")
                .ok_or(format!("unquoted attribute in <{name} {attrs}>"))?;
            let key = &a[..eq];
            let after = &a[eq + 2..];
            let close = after.find('"').ok_or("unterminated attribute")?;
            let value = &after[..close];
            check_text(value, &ENTITIES)?;
            if key == "id" && !ids.insert(value.to_string()) {
                return Err(format!("duplicate id {value:?}"));
            }
            a = after[close + 1..].trim_start();
        }
        match (VOID.contains(&name), self_closed) {
            (true, true) => {}
            (true, false) => return Err(format!("void <{name}> not self-closed")),
            (false, true) => {}
            (false, false) => stack.push(name.to_string()),
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed elements: {stack:?}"))
    }
}

fn check_text(text: &str, entities: &[&str]) -> Result<(), String> {
    if text.contains('<') || text.contains('>') {
        return Err(format!("raw angle bracket in {text:?}"));
    }
    for (i, _) in text.match_indices('&') {
        if !entities.iter().any(|e| text[i..].starts_with(e)) {
            return Err(format!("bare & in {text:?}"));
        }
    }
    Ok(())
}

#[test]
fn the_checker_catches_what_it_should() {
    assert!(check_well_formed("<!DOCTYPE html><p>a &amp; b<br/></p>").is_ok());
    assert!(check_well_formed("<!DOCTYPE html><p>a & b</p>").is_err());
    assert!(check_well_formed("<!DOCTYPE html><p><b></p></b>").is_err());
    assert!(check_well_formed("<!DOCTYPE html><p><br></p>").is_err());
    assert!(check_well_formed("<!DOCTYPE html><p class=x></p>").is_err());
    assert!(check_well_formed("<!DOCTYPE html><p id=\"a\"></p><p id=\"a\"></p>").is_err());
    assert!(check_well_formed("<!DOCTYPE html><p>").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_headless_chromium() {
    let Some(bin) = chromium() else {
        return;
    };
    let yaml = format!(
        r#"
global:
  schedule: {{every: 1s, jitter: 0}}
  status_history: 30
simulator:
  ttft: 30ms
  itl: 2ms
  output_tokens: {TOKENS}
  faults: {{http_5xx: 0.3}}
scenarios:
  fifty: {{prompt: "Count.", max_tokens: 64}}
targets:
  - {{name: sim-chat, dialect: openai-chat, base_url: simulator, model: sim-llm}}
"#
    );
    let running = commands::start(common::load(&yaml), None, "127.0.0.1:0")
        .await
        .expect("daemon starts");
    let base = format!("http://{}", running.addr);
    eventually(
        Duration::from_secs(60),
        "successes and failures",
        || async {
            let (_, m) = get(&format!("{base}/metrics")).await;
            let n = |r| sample(&m, "inferprobe_probes_total", &[("result", r)]).unwrap_or(0.0);
            (n("success") >= 2.0 && n("http_5xx") >= 1.0).then_some(())
        },
    )
    .await;

    let (_, raw) = get(&format!("{base}/")).await;
    check_well_formed(raw.trim_end()).unwrap_or_else(|e| panic!("status page: {e}\n{raw}"));

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let profile = tempfile::tempdir().expect("profile dir");
    let dom = {
        let (bin, profile, url) = (bin.clone(), profile.path().to_owned(), format!("{base}/"));
        tokio::task::spawn_blocking(move || browse(&bin, &profile, &["--dump-dom"], &url))
            .await
            .expect("joins")
    };
    assert_eq!(dom.matches("class=\"probe-row\"").count(), 1, "{dom}");
    let spark = dom
        .split("<svg class=\"spark\"")
        .nth(1)
        .and_then(|s| s.split("</svg>").next())
        .unwrap_or_else(|| panic!("no sparkline:\n{dom}"));
    assert!(
        spark.contains("<circle class=\"ok\""),
        "green dots: {spark}"
    );
    assert!(spark.contains("<circle class=\"bad\""), "red dots: {spark}");
    assert!(spark.contains("<polyline class=\"ttft\""), "{spark}");
    assert!(dom.contains("class=\"ratio\""), "{dom}");
    assert!(
        dom.contains("class=\"last-failure\"><span class=\"bad\">http_5xx</span>"),
        "{dom}"
    );

    // A successful probe's waterfall: one bar per gap between its 50 tokens.
    let link = dom
        .split("class=\"fall-link ok\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no waterfall link of a success:\n{dom}"))
        .replace("&amp;", "&");
    let url = format!("{base}{link}");
    let (status, raw_fall) = get(&url).await;
    assert_eq!(status, 200, "{raw_fall}");
    check_well_formed(raw_fall.trim_end()).unwrap_or_else(|e| panic!("waterfall: {e}"));
    let fall = {
        let (bin, profile, url) = (bin.clone(), profile.path().to_owned(), url.clone());
        tokio::task::spawn_blocking(move || browse(&bin, &profile, &["--dump-dom"], &url))
            .await
            .expect("joins")
    };
    assert_eq!(
        fall.matches("<rect class=\"gap\"").count(),
        TOKENS - 1,
        "{fall}"
    );
    assert!(fall.contains(&format!("{} token gaps", TOKENS - 1)));
    assert_eq!(
        fall.split("<table id=\"milestones\">")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .map(|t| t.matches("<tr>").count()),
        Some(8),
        "six milestones, output tokens and gaps"
    );

    for (name, url) in [("status.png", format!("{base}/")), ("waterfall.png", url)] {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let arg = format!("--screenshot={}", path.display());
        let (bin, profile) = (bin.clone(), profile.path().to_owned());
        tokio::task::spawn_blocking(move || browse(&bin, &profile, &[&arg], &url))
            .await
            .expect("joins");
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2000,
            "{name}"
        );
        eprintln!("screenshot: {}", path.display());
    }
    running.stop().await;
}
