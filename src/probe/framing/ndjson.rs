//! Newline-delimited JSON framing (`application/x-ndjson`, Ollama's native API).
//!
//! One event per line. Lines end with LF (a CR before it is dropped); blank lines are skipped.
//! The framer does not parse JSON: it hands each line to the dialect, whose decoder reports a
//! line that is not a JSON object as malformed. A last line without its line end is an event
//! when it is a complete JSON value (a server that omits the final newline loses nothing) and
//! [`FrameError::Unterminated`] otherwise (the body was cut inside it).
//!
//! Like the SSE framer, the search for a line end resumes where the previous one stopped, so
//! framing is linear in the bytes read.

use super::{Deframer, FrameError, MAX_EVENT_BYTES};

/// The incremental NDJSON line splitter.
#[derive(Default)]
pub struct Parser {
    /// Unparsed bytes live in `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..scan]` holds no line end.
    scan: usize,
}

impl Deframer for Parser {
    fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.scan -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn next_event(&mut self) -> Result<Option<(String, String)>, FrameError> {
        loop {
            let Some(i) = self.buf[self.scan..].iter().position(|&b| b == b'\n') else {
                self.scan = self.buf.len();
                if self.buf.len() - self.pos > MAX_EVENT_BYTES {
                    return Err(FrameError::Malformed(format!(
                        "line longer than {MAX_EVENT_BYTES} bytes"
                    )));
                }
                return Ok(None);
            };
            let (start, end) = (self.pos, self.scan + i);
            self.pos = end + 1;
            self.scan = self.pos;
            let line = trim(&self.buf[start..end]);
            if line.is_empty() {
                continue;
            }
            return line_event(line).map(Some);
        }
    }

    fn finish(&mut self) -> Result<Option<(String, String)>, FrameError> {
        let rest = trim(&self.buf[self.pos..]);
        if rest.is_empty() {
            return Ok(None);
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(rest).is_ok() {
            let event = line_event(rest)?;
            self.pos = self.buf.len();
            return Ok(Some(event));
        }
        Err(FrameError::Unterminated {
            bytes: rest.len(),
            mid_line: true,
        })
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = line[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}

fn line_event(line: &[u8]) -> Result<(String, String), FrameError> {
    match std::str::from_utf8(line) {
        Ok(s) => Ok((String::new(), s.to_string())),
        Err(e) => Err(FrameError::Malformed(format!(
            "invalid UTF-8 in a line at byte {}",
            e.valid_up_to()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type End = Result<Option<(String, String)>, String>;

    fn run(parts: &[&[u8]]) -> (Vec<String>, End) {
        let mut p = Parser::default();
        let mut got = Vec::new();
        for part in parts {
            p.push(part);
            while let Some((ev, data)) = p.next_event().expect("no error") {
                assert_eq!(ev, "");
                got.push(data);
            }
        }
        let end = p.finish().map_err(|e| e.to_string());
        (got, end)
    }

    #[test]
    fn splits_lines_across_chunks_and_skips_blank_ones() {
        let (got, end) = run(&[b"{\"a\":1}\n{\"b\"", b":2}\r\n\n  \n{\"c\":3}\n"]);
        assert_eq!(got, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        assert_eq!(end, Ok(None));
    }

    #[test]
    fn a_complete_last_line_without_newline_is_an_event() {
        let (got, end) = run(&[b"{\"a\":1}\n{\"done\":true}"]);
        assert_eq!(got, ["{\"a\":1}"]);
        assert_eq!(
            end,
            Ok(Some((String::new(), "{\"done\":true}".to_string())))
        );
    }

    #[test]
    fn a_cut_last_line_is_unterminated() {
        let (got, end) = run(&[b"{\"a\":1}\n{\"message\":{\"con"]);
        assert_eq!(got, ["{\"a\":1}"]);
        assert_eq!(
            end,
            Err("the stream ended inside an event: the last event was cut off mid-line (16 bytes pending)".to_string())
        );
    }

    #[test]
    fn invalid_utf8_and_endless_lines_are_malformed() {
        let mut p = Parser::default();
        p.push(b"{\"a\":\"\xff\"}\n");
        assert!(
            matches!(p.next_event(), Err(FrameError::Malformed(m)) if m == "invalid UTF-8 in a line at byte 6")
        );

        let mut p = Parser::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut err = None;
        for _ in 0..=(MAX_EVENT_BYTES >> 20) {
            p.push(&chunk);
            if let Err(e) = p.next_event() {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(FrameError::Malformed(m)) if m.starts_with("line longer than")));
    }
}
