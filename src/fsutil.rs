//! Reading files named on the command line or in configuration, each kind with a size limit.
//!
//! A path can name anything: `/dev/zero`, `/dev/urandom`, a pipe, a log file that never stops
//! growing. Every file inferprobe reads goes through [`read`] or [`read_to_string`], which read
//! at most `limit + 1` bytes, so such a file costs at most its limit in memory and time, and a
//! file over the limit is an error ("larger than 4 MiB") instead of an allocation failure.
//!
//! Files are opened without blocking: opening a named pipe that no process writes to would
//! otherwise hang start-up (or a reload) for ever. A pipe or socket is read until its writer
//! closes it, for at most [`PIPE_WAIT`]; one with no writer reads as empty.

use std::io::{self, Read};
use std::path::Path;

/// The config file, the web config file and the simulator's config file.
pub const CONFIG_FILE_LIMIT: u64 = 4 << 20;
/// A scenario's `prompt_file`: room for about a million tokens of text.
pub const PROMPT_FILE_LIMIT: u64 = 4 << 20;
/// A secret read from a file (`api_key: {file: ...}`): keys are a few hundred bytes at most.
pub const SECRET_FILE_LIMIT: u64 = 64 << 10;
/// A TLS certificate, key or CA bundle file (a full public CA bundle is about 250 KiB).
pub const TLS_FILE_LIMIT: u64 = 1 << 20;
/// A load-test result file given to `thresholds` (per-request detail makes these large).
pub const RESULTS_FILE_LIMIT: u64 = 256 << 20;

/// Longest wait for a pipe's or socket's writer to finish.
pub const PIPE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads at most `limit` bytes of `path`. A longer file fails with
/// [`io::ErrorKind::FileTooLarge`] and the message "larger than {limit}".
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        opts.custom_flags(libc::O_NONBLOCK);
        let file = opts.open(path)?;
        let kind = file.metadata()?.file_type();
        if kind.is_fifo() || kind.is_socket() {
            return read_pipe(file, limit, PIPE_WAIT);
        }
        read_file(file, limit)
    }
    #[cfg(not(unix))]
    read_file(opts.open(path)?, limit)
}

/// Reads a pipe opened without blocking until its end, `limit` or `wait`.
#[cfg(unix)]
fn read_pipe(
    mut file: std::fs::File,
    limit: u64,
    wait: std::time::Duration,
) -> io::Result<Vec<u8>> {
    let deadline = std::time::Instant::now() + wait;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(bytes),
            Ok(n) => {
                bytes.extend_from_slice(&buf[..n]);
                if bytes.len() as u64 > limit {
                    return Err(too_large(limit));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "a pipe whose writer did not finish within {}",
                            humantime::format_duration(wait)
                        ),
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_file(file: std::fs::File, limit: u64) -> io::Result<Vec<u8>> {
    // The length is a hint only: special files report 0 and a growing file may change.
    let hint = file
        .metadata()
        .map(|m| m.len().min(limit))
        .unwrap_or(0)
        .try_into()
        .unwrap_or(0usize);
    let mut bytes = Vec::with_capacity(hint.saturating_add(1));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// Like [`read`], for text: invalid UTF-8 fails with [`io::ErrorKind::InvalidData`].
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The error for a file over `limit`.
pub fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("larger than {}", size(limit)),
    )
}

/// `4 MiB`, `64 KiB`, `100 bytes`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_up_to_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read_to_string(&path, 5).unwrap(), "hello");
        assert_eq!(read(&path, 1 << 20).unwrap(), b"hello");
        let e = read_to_string(&path, 4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than 4 bytes");
    }

    #[test]
    fn endless_special_files_stop_at_the_limit() {
        for dev in ["/dev/zero", "/dev/urandom"] {
            if !Path::new(dev).exists() {
                continue;
            }
            let e = read(Path::new(dev), 64 << 10).unwrap_err();
            assert_eq!(e.to_string(), "larger than 64 KiB", "{dev}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn named_pipes_never_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // No writer: empty, at once.
        let t = std::time::Instant::now();
        assert_eq!(read(&path, 100).unwrap(), b"");
        assert!(t.elapsed() < PIPE_WAIT);

        // A writer that finishes: its bytes.
        let p = path.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            // A reader that saw no writer yet and closed makes the write fail: write again.
            for _ in 0..200 {
                let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) else {
                    continue;
                };
                if f.write_all(b"sk-from-a-pipe").is_ok() {
                    return;
                }
            }
        });
        // The writer's open blocks until a reader is there, so retry until it wrote.
        let mut got = Vec::new();
        for _ in 0..200 {
            got = read(&path, 100).unwrap();
            if !got.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        writer.join().unwrap();
        assert_eq!(got, b"sk-from-a-pipe");

        // A writer that never finishes: a timeout, not a hang.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p = path.clone();
        let holder = std::thread::spawn(move || {
            let _f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
        });
        let mut err = None;
        for _ in 0..200 {
            match read(&path, 100) {
                Err(e) => {
                    err = Some(e);
                    break;
                }
                Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        let _ = tx.send(());
        holder.join().unwrap();
        let e = err.expect("the open writer is never done");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            e.to_string(),
            "a pipe whose writer did not finish within 2s"
        );
    }

    #[test]
    fn invalid_utf8_and_missing_files_keep_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"\xff\xfe").unwrap();
        let e = read_to_string(&path, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = read(&dir.path().join("missing"), 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(4 << 20), "4 MiB");
        assert_eq!(size(64 << 10), "64 KiB");
        assert_eq!(size(1500), "1500 bytes");
        assert_eq!(size(0), "0 bytes");
    }
}
