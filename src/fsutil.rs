//! Reading files named on the command line or in configuration, each kind with a size limit.
//!
//! A path can name anything: `/dev/zero`, `/dev/urandom`, a pipe, a log file that never stops
//! growing. Every file inferprobe reads goes through [`read`] or [`read_to_string`], which read
//! at most `limit + 1` bytes, so such a file costs at most its limit in memory and time, and a
//! file over the limit is an error ("larger than 4 MiB") instead of an allocation failure.

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

/// Reads at most `limit` bytes of `path`. A longer file fails with
/// [`io::ErrorKind::FileTooLarge`] and the message "larger than {limit}".
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
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
