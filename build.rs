//! Embeds the git revision into the binary for `--version` and `inferprobe_build_info`.
use std::process::Command;

/// Runs git and returns its trimmed output, or `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=INFERPROBE_GIT_REVISION");
    // Builds without a .git directory (a container build context) pass the revision in.
    if let Some(rev) = std::env::var("INFERPROBE_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
    {
        println!("cargo:rustc-env=INFERPROBE_GIT_REVISION={}", rev.trim());
        return;
    }
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=INFERPROBE_GIT_REVISION={rev}");
    // In a worktree `.git` is a file: ask git where HEAD and the refs live.
    for what in ["HEAD", "refs/heads"] {
        if let Some(p) = git(&["rev-parse", "--git-path", what]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
