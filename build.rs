//! Embeds the git revision into the binary for `--version` and `inferprobe_build_info`.
use std::process::Command;

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
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=INFERPROBE_GIT_REVISION={rev}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
