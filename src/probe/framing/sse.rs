//! Server-sent-event framing (`text/event-stream`).
//!
//! The framer follows the WHATWG event-stream grammar: an optional UTF-8 BOM at the start, lines
//! ended by CRLF, LF or a lone CR, `:` comments, `data:` lines joined by `\n`, one optional space
//! after the colon, and an event dispatched on a blank line only when it carried data. `id` and
//! `retry` are ignored (a probe never reconnects). Where the grammar discards an event left
//! unterminated at end of stream, we report it as [`FrameError::Unterminated`]: for a probe, a body
//! cut inside an event is a dropped stream, not a clean end. A trailing comment, blank lines or
//! a field line without data (nothing that could become an event) still end the stream cleanly.
//!
//! Framing is linear in the bytes read: the search for a line end resumes where the previous
//! one stopped, and the consumed part of the buffer is shifted out only when a chunk arrives, so
//! each byte is scanned once and moved at most once. A long line arriving in small chunks costs
//! no more per byte than short ones (see BENCHMARKS.md, section 3).
//!
//! We do not use `eventsource-stream` here: it keeps invalid UTF-8 in its buffer and silently
//! withholds every later event until end of stream (a probe would see a stall, not a malformed
//! stream), and it copies the rest of its buffer once per line, which is quadratic in the events
//! per chunk. The test `eventsource_stream_withholds_events_after_invalid_utf8` pins the first.

use std::fmt::Display;
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;

use super::{Deframer, FrameError, StampedEvent, MAX_EVENT_BYTES};

/// Frames a stream of (arrival instant, chunk) as server-sent events: [`super::frame`] with
/// [`crate::probe::dialect::Framing::Sse`].
pub fn frame<S, E>(chunks: S) -> impl Stream<Item = Result<StampedEvent, FrameError>> + Send
where
    S: Stream<Item = Result<(Instant, Bytes), E>> + Send + Unpin,
    E: Display,
{
    super::with_parser(Parser::default(), chunks)
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The incremental, allocation-light event-stream parser.
#[derive(Default)]
pub struct Parser {
    /// Unparsed bytes live in `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..scan]` is known to hold no line end: the next search starts at `scan`, so a
    /// long line arriving in many chunks is scanned once, not once per chunk.
    scan: usize,
    /// The start of the stream has been checked for a BOM.
    bom_checked: bool,
    /// The previous line ended with CR: a LF right after it belongs to the same line end.
    skip_lf: bool,
    pending: PendingEvent,
}

#[derive(Default)]
struct PendingEvent {
    event: String,
    data: String,
    has_data: bool,
    /// Bytes of the field lines applied since the last blank line (line ends counted as one).
    raw: usize,
}

impl Deframer for Parser {
    fn push(&mut self, bytes: &[u8]) {
        // Only a partial line is left in the buffer here (the framer reads the next chunk only
        // once no line end is left), and a line is shifted at most once: after this move `pos`
        // is 0 and stays there until that line is complete.
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.scan -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn next_event(&mut self) -> Result<Option<(String, String)>, FrameError> {
        if !self.bom_checked {
            let rest = &self.buf[self.pos..];
            if rest.len() < BOM.len() && BOM.starts_with(rest) {
                // Could still be a BOM split across chunks.
                return Ok(None);
            }
            if rest.starts_with(BOM) {
                self.pos += BOM.len();
                self.scan = self.scan.max(self.pos);
            }
            self.bom_checked = true;
        }
        loop {
            if self.skip_lf {
                match self.buf.get(self.pos) {
                    None => return Ok(None),
                    Some(b'\n') => {
                        self.pos += 1;
                        self.scan = self.scan.max(self.pos);
                    }
                    Some(_) => {}
                }
                self.skip_lf = false;
                continue;
            }
            let from = self.scan;
            let Some(i) = self.buf[from..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            else {
                self.scan = self.buf.len();
                if self.buf.len() - self.pos > MAX_EVENT_BYTES {
                    return Err(FrameError::Malformed(format!(
                        "line longer than {MAX_EVENT_BYTES} bytes"
                    )));
                }
                return Ok(None);
            };
            let (start, end) = (self.pos, from + i);
            self.skip_lf = self.buf[end] == b'\r';
            self.pos = end + 1;
            self.scan = self.pos;
            if let Some(event) = self.pending.line(&self.buf[start..end])? {
                return Ok(Some(event));
            }
        }
    }

    fn finish(&mut self) -> Result<Option<(String, String)>, FrameError> {
        let mut partial = &self.buf[self.pos..];
        if !self.bom_checked && BOM.starts_with(partial) {
            // Nothing but (part of) a byte-order mark.
            partial = &[];
        }
        let line_matters = !partial.is_empty()
            && partial[0] != b':'
            && !partial.iter().all(u8::is_ascii_whitespace);
        if !self.pending.has_data && !line_matters {
            return Ok(None);
        }
        Err(FrameError::Unterminated {
            bytes: self.pending.raw + partial.len(),
            mid_line: !partial.is_empty(),
        })
    }
}

impl PendingEvent {
    /// Applies one line; returns the event a blank line completes.
    fn line(&mut self, line: &[u8]) -> Result<Option<(String, String)>, FrameError> {
        if line.is_empty() {
            self.raw = 0;
            if !self.has_data {
                self.event.clear();
                return Ok(None);
            }
            self.has_data = false;
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            return Ok(Some((event, data)));
        }
        if line[0] == b':' {
            return Ok(None);
        }
        self.raw += line.len() + 1;
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                let value = utf8(value, "data")?;
                let joined = self.data.len() + usize::from(self.has_data) + value.len();
                if joined > MAX_EVENT_BYTES {
                    return Err(FrameError::Malformed(format!(
                        "event data longer than {MAX_EVENT_BYTES} bytes"
                    )));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            b"event" => {
                let value = utf8(value, "event")?;
                self.event.clear();
                self.event.push_str(value);
            }
            _ => {}
        }
        Ok(None)
    }
}

fn utf8<'a>(value: &'a [u8], field: &str) -> Result<&'a str, FrameError> {
    std::str::from_utf8(value).map_err(|e| {
        FrameError::Malformed(format!(
            "invalid UTF-8 in `{field}` field at byte {}",
            e.valid_up_to()
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::{stream, FutureExt, StreamExt};

    use super::*;

    type Chunk = Result<(Instant, Bytes), String>;

    fn chunks(base: Instant, parts: &[&[u8]]) -> Vec<Chunk> {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok((
                    base + Duration::from_millis(i as u64),
                    Bytes::copy_from_slice(p),
                ))
            })
            .collect()
    }

    fn run(input: Vec<Chunk>) -> Vec<Result<StampedEvent, String>> {
        frame(stream::iter(input))
            .map(|r| r.map_err(|e| e.to_string()))
            .collect::<Vec<_>>()
            .now_or_never()
            .unwrap_or_default()
    }

    fn ev(at: Instant, event: &str, data: &str) -> Result<StampedEvent, String> {
        Ok(StampedEvent {
            at,
            event: event.to_string(),
            data: data.to_string(),
        })
    }

    #[test]
    fn stamps_each_event_with_the_chunk_that_completed_it() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let got = run(chunks(
            t,
            &[
                b"data: a\n\ndata: b",
                b"\n",
                b"\ndata: c\n\ndata: d\n\n",
                b"data: e\n",
            ],
        ));
        assert_eq!(
            got,
            vec![
                ev(ms(0), "", "a"),
                ev(ms(2), "", "b"),
                ev(ms(2), "", "c"),
                ev(ms(2), "", "d"),
                // "data: e\n" without its blank line.
                Err(unterminated(8, false)),
            ]
        );
    }

    #[test]
    fn handles_crlf_cr_comments_multiline_data_and_event_names() {
        let t = Instant::now();
        let input: &[u8] =
            b": keep-alive\r\nevent: add\r\ndata: 1\r\ndata:2\r\nid: 7\r\nretry: 10\r\n\r\n\
            data:  spaced\r\rdata\n\nevent: lonely\n\ndata: x\n";
        let got = run(chunks(t, &[input]));
        assert_eq!(
            got,
            vec![
                ev(t, "add", "1\n2"),
                ev(t, "", " spaced"),
                ev(t, "", ""),
                Err(unterminated(8, false)),
            ]
        );
    }

    #[test]
    fn same_events_for_every_split_point_including_inside_utf8_and_bom() {
        let t = Instant::now();
        let input =
            "\u{feff}data: h\u{e9}llo \u{1f600}\r\n\r\nevent: e\ndata: a\ndata: b\r\rdata: z\n\n";
        let input = input.as_bytes();
        let want: Vec<(String, String)> = vec![
            (String::new(), "h\u{e9}llo \u{1f600}".to_string()),
            ("e".to_string(), "a\nb".to_string()),
            (String::new(), "z".to_string()),
        ];
        for size in 1..=input.len() {
            let parts: Vec<&[u8]> = input.chunks(size).collect();
            let got: Vec<(String, String)> = run(chunks(t, &parts))
                .into_iter()
                .map(|r| r.map(|e| (e.event, e.data)))
                .collect::<Result<_, _>>()
                .unwrap_or_default();
            assert_eq!(got, want, "chunk size {size}");
        }
    }

    #[test]
    fn lf_after_cr_in_the_next_chunk_is_not_a_second_line_end() {
        let t = Instant::now();
        let got = run(chunks(t, &[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]));
        let ms = |n| t + Duration::from_millis(n);
        assert_eq!(got, vec![ev(ms(1), "", "a"), ev(ms(2), "", "b")]);
    }

    #[test]
    fn transport_error_ends_the_stream_after_buffered_events() {
        let t = Instant::now();
        let mut input = chunks(t, &[b"data: a\n\ndata: b\n\n"]);
        input.push(Err("connection reset".to_string()));
        input.push(Ok((t, Bytes::from_static(b"data: c\n\n"))));
        let got = run(input);
        assert_eq!(
            got,
            vec![
                ev(t, "", "a"),
                ev(t, "", "b"),
                Err("reading the response body failed: connection reset".to_string()),
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_malformed_at_once() {
        let t = Instant::now();
        let input: Vec<Chunk> = chunks(t, &[b"data: a\n\n", b"data: \xff\n\ndata: b\n\n"]);
        let mut s = frame(stream::iter(input).chain(stream::pending()));
        let first = s.next().now_or_never().flatten().map(|r| r.map(|e| e.data));
        assert!(matches!(first, Some(Ok(ref d)) if d == "a"), "{first:?}");
        let second = s.next().now_or_never().flatten();
        assert!(
            matches!(second, Some(Err(FrameError::Malformed(ref m))) if m == "invalid UTF-8 in `data` field at byte 0"),
            "{second:?}"
        );
        assert!(matches!(s.next().now_or_never(), Some(None)));
    }

    /// Why we frame events ourselves: after an invalid byte, `eventsource-stream` neither reports
    /// an error nor yields the valid events behind it while the connection stays open.
    #[test]
    fn eventsource_stream_withholds_events_after_invalid_utf8() {
        use eventsource_stream::Eventsource;
        let input: Vec<Result<Bytes, String>> = vec![
            Ok(Bytes::from_static(b"data: a\n\n")),
            Ok(Bytes::from_static(b"data: \xff\n\ndata: b\n\n")),
            Ok(Bytes::from_static(b"data: c\n\n")),
        ];
        let mut s = stream::iter(input).chain(stream::pending()).eventsource();
        let first = s.next().now_or_never().flatten().map(|r| r.map(|e| e.data));
        assert!(matches!(first, Some(Ok(ref d)) if d == "a"));
        // Neither an error nor "b"/"c": the stream just looks stalled.
        assert!(s.next().now_or_never().is_none());
    }

    #[test]
    fn overlong_line_is_malformed() {
        let t = Instant::now();
        let long = vec![b'x'; MAX_EVENT_BYTES + 1];
        let got = run(vec![Ok((t, Bytes::from(long)))]);
        assert_eq!(
            got,
            vec![Err(format!(
                "malformed event stream: line longer than {MAX_EVENT_BYTES} bytes"
            ))]
        );
    }

    fn unterminated(bytes: usize, mid_line: bool) -> String {
        FrameError::Unterminated { bytes, mid_line }.to_string()
    }

    #[test]
    fn event_cut_mid_line_at_eof_is_unterminated() {
        let t = Instant::now();
        assert_eq!(
            run(chunks(t, &[b"data: a\n\ndata: {\"x\"", b":1"])),
            vec![ev(t, "", "a"), Err(unterminated(12, true))]
        );
        // A cut inside the `event:` line of an event that has no data yet is a cut too.
        assert_eq!(
            run(chunks(t, &[b"event: message_st"])),
            vec![Err(unterminated(17, true))]
        );
        assert_eq!(
            unterminated(12, true),
            "the stream ended inside an event: the last event was cut off mid-line \
             (12 bytes pending)"
        );
    }

    #[test]
    fn data_line_without_its_blank_line_at_eof_is_unterminated() {
        let t = Instant::now();
        // "event: e\n" (9) + "data: b\n" (8) + "data:\r\n" (6, the CRLF counted as one)
        assert_eq!(
            run(chunks(t, &[b"data: a\n\nevent: e\ndata: b\ndata:\r\n"])),
            vec![ev(t, "", "a"), Err(unterminated(23, false))]
        );
        assert_eq!(
            unterminated(23, false),
            "the stream ended inside an event: the last event was cut off without its blank \
             line (23 bytes pending)"
        );
        // Pending data and a cut comment line after it: still the event that was cut.
        assert_eq!(
            run(chunks(t, &[b"data: b\n: keep"])),
            vec![Err(unterminated(14, true))]
        );
    }

    #[test]
    fn clean_ends_are_not_errors() {
        let t = Instant::now();
        for input in [
            &b""[..],
            b"data: a\n\n",
            b"data: a\r\n\r\n",
            b"data: a\r\r",
            b"data: a\n\n: keep-alive\n",
            b"data: a\n\n: keep-alive",
            b"data: a\n\n\n\n\n",
            b"data: a\n\n  \t",
            b"data: a\n\nevent: ping\n",
            b"\xEF\xBB",
            b"\xEF\xBB\xBF",
        ] {
            let got = run(chunks(t, &[input]));
            assert!(got.iter().all(Result::is_ok), "{input:?}: {got:?}");
        }
    }

    #[test]
    fn as_event_borrows_fields() {
        let e = StampedEvent {
            at: Instant::now(),
            event: "ping".to_string(),
            data: "{}".to_string(),
        };
        assert_eq!(
            e.as_event(),
            crate::probe::dialect::FramedEvent {
                event: "ping",
                data: "{}"
            }
        );
    }
}
