//! AWS event-stream framing (`application/vnd.amazon.eventstream`, Amazon Bedrock's
//! `ConverseStream`).
//!
//! A binary message is a 12-byte prelude (total length, headers length, prelude CRC-32), typed
//! headers, a payload and a CRC-32 of everything before it. This module only finds message
//! boundaries and bounds the buffer; parsing and both checksums are `aws-smithy-eventstream`'s.
//! Each message becomes one event:
//!
//! | `:message-type` | event name | payload |
//! |---|---|---|
//! | `event` | `:event-type` (`contentBlockDelta`, `metadata`, ...) | the message's payload |
//! | `exception` | `:exception-type` (`throttlingException`, ...) | the message's payload |
//! | `error` | `error` | `{"code": :error-code, "message": :error-message}` |
//!
//! Payloads must be UTF-8 (Bedrock sends JSON); anything else is a malformed stream.

use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::Message;

use super::{Deframer, FrameError, MAX_EVENT_BYTES};

/// Prelude (12 bytes) plus message CRC (4 bytes): the smallest message.
const MIN_MESSAGE: usize = 16;

/// The incremental message splitter.
#[derive(Default)]
pub struct Parser {
    /// Unparsed bytes live in `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
}

impl Deframer for Parser {
    fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn next_event(&mut self) -> Result<Option<(String, String)>, FrameError> {
        let rest = &self.buf[self.pos..];
        let Some(len) = rest.get(..4) else {
            return Ok(None);
        };
        let total = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if total < MIN_MESSAGE {
            return Err(FrameError::Malformed(format!(
                "event-stream message length {total} is shorter than a prelude and checksum"
            )));
        }
        if total > MAX_EVENT_BYTES {
            return Err(FrameError::Malformed(format!(
                "event-stream message of {total} bytes exceeds {MAX_EVENT_BYTES} bytes"
            )));
        }
        if rest.len() < total {
            return Ok(None);
        }
        let message = read_message_from(&rest[..total])
            .map_err(|e| FrameError::Malformed(format!("invalid event-stream message: {e}")))?;
        self.pos += total;
        event_of(&message).map(Some)
    }

    fn finish(&mut self) -> Result<Option<(String, String)>, FrameError> {
        let pending = self.buf.len() - self.pos;
        if pending == 0 {
            return Ok(None);
        }
        Err(FrameError::Unterminated {
            bytes: pending,
            mid_line: true,
        })
    }
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn event_of(m: &Message) -> Result<(String, String), FrameError> {
    let payload = || {
        std::str::from_utf8(m.payload())
            .map(str::to_string)
            .map_err(|e| {
                FrameError::Malformed(format!(
                    "event-stream payload is not UTF-8 at byte {}",
                    e.valid_up_to()
                ))
            })
    };
    match header(m, ":message-type") {
        Some("event") => match header(m, ":event-type") {
            Some(name) => Ok((name.to_string(), payload()?)),
            None => Err(FrameError::Malformed(
                "event-stream event without an :event-type header".into(),
            )),
        },
        Some("exception") => match header(m, ":exception-type") {
            Some(name) => Ok((name.to_string(), payload()?)),
            None => Err(FrameError::Malformed(
                "event-stream exception without an :exception-type header".into(),
            )),
        },
        Some("error") => {
            let body = serde_json::json!({
                "code": header(m, ":error-code").unwrap_or(""),
                "message": header(m, ":error-message").unwrap_or(""),
            });
            Ok(("error".to_string(), body.to_string()))
        }
        Some(other) => Err(FrameError::Malformed(format!(
            "unknown event-stream :message-type {:?}",
            crate::probe::clip(other, 40)
        ))),
        None => Err(FrameError::Malformed(
            "event-stream message without a :message-type header".into(),
        )),
    }
}

/// Encodes one message: the inverse of the parser, for the simulator and tests.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue};
    let mut m = Message::new(bytes::Bytes::copy_from_slice(payload));
    for (k, v) in headers {
        m = m.add_header(Header::new(
            (*k).to_string(),
            HeaderValue::String((*v).to_string().into()),
        ));
    }
    let mut out = Vec::with_capacity(payload.len() + 64);
    // Writing to a Vec fails only for a header name or value over the format's limits, which
    // no caller passes; an empty result then fails the reader's length check loudly.
    let _ = aws_smithy_eventstream::frame::write_message_to(&m, &mut out);
    out
}

/// An event message: `:message-type: event` with `:event-type` and a JSON content type.
pub fn encode_event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":message-type", "event"),
            (":event-type", event_type),
            (":content-type", "application/json"),
        ],
        payload,
    )
}

/// An exception message: `:message-type: exception` with `:exception-type`.
pub fn encode_exception(exception_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":message-type", "exception"),
            (":exception-type", exception_type),
            (":content-type", "application/json"),
        ],
        payload,
    )
}

/// Encodes a readable description of a stream, one message per line: `event TYPE JSON`,
/// `exception TYPE JSON` or `error CODE MESSAGE`; blank and `#` lines are skipped. Recorded
/// Bedrock fixtures are kept in this form so that no opaque bytes are committed.
pub fn encode_readable(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ' ');
        let (kind, name, rest) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        out.extend(match kind {
            "event" => encode_event(name, rest.as_bytes()),
            "exception" => encode_exception(name, rest.as_bytes()),
            _ => encode(
                &[
                    (":message-type", "error"),
                    (":error-code", name),
                    (":error-message", rest),
                ],
                b"",
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(parts: &[&[u8]]) -> (Vec<(String, String)>, Result<(), String>) {
        let mut p = Parser::default();
        let mut got = Vec::new();
        for part in parts {
            p.push(part);
            loop {
                match p.next_event() {
                    Ok(Some(ev)) => got.push(ev),
                    Ok(None) => break,
                    Err(e) => return (got, Err(e.to_string())),
                }
            }
        }
        let end = p.finish().map(|_| ()).map_err(|e| e.to_string());
        (got, end)
    }

    #[test]
    fn messages_split_anywhere_come_out_whole() {
        let mut body = encode_event("messageStart", br#"{"role":"assistant"}"#);
        body.extend(encode_event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ));
        body.extend(encode_exception(
            "throttlingException",
            br#"{"message":"slow down"}"#,
        ));
        for cut in [1, 7, 13, 40] {
            let parts: Vec<&[u8]> = body.chunks(cut).collect();
            let (got, end) = run(&parts);
            assert_eq!(end, Ok(()), "cut {cut}");
            assert_eq!(
                got,
                vec![
                    ("messageStart".into(), r#"{"role":"assistant"}"#.into()),
                    (
                        "contentBlockDelta".into(),
                        r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#.into()
                    ),
                    (
                        "throttlingException".into(),
                        r#"{"message":"slow down"}"#.into()
                    ),
                ],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn error_messages_carry_code_and_message() {
        let body = encode(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            b"",
        );
        let (got, end) = run(&[&body]);
        assert_eq!(end, Ok(()));
        assert_eq!(
            got,
            vec![(
                "error".into(),
                r#"{"code":"InternalFailure","message":"boom"}"#.into()
            )]
        );
    }

    #[test]
    fn a_cut_message_is_unterminated_and_a_bad_checksum_malformed() {
        let body = encode_event("messageStop", br#"{"stopReason":"end_turn"}"#);
        let (got, end) = run(&[&body[..body.len() - 3]]);
        assert!(got.is_empty());
        assert_eq!(
            end,
            Err(format!(
                "the stream ended inside an event: the last event was cut off mid-line ({} bytes pending)",
                body.len() - 3
            ))
        );

        let mut bad = body.clone();
        let n = bad.len();
        bad[n - 6] ^= 0x20;
        let (_, end) = run(&[&bad]);
        assert!(
            end.as_ref().is_err_and(
                |e| e.starts_with("malformed event stream: invalid event-stream message")
            ),
            "{end:?}"
        );
    }

    #[test]
    fn absurd_lengths_are_refused_before_buffering() {
        let (_, end) = run(&[&[0xff, 0xff, 0xff, 0xff, 0, 0]]);
        assert!(
            end.as_ref().is_err_and(|e| e.contains("exceeds")),
            "{end:?}"
        );
        let (_, end) = run(&[&[0, 0, 0, 3, 0, 0]]);
        assert!(
            end.as_ref().is_err_and(|e| e.contains("shorter than")),
            "{end:?}"
        );
    }

    #[test]
    fn messages_without_the_headers_that_name_them_are_malformed() {
        let body = encode(&[(":message-type", "event")], b"{}");
        let (_, end) = run(&[&body]);
        assert_eq!(
            end,
            Err("malformed event stream: event-stream event without an :event-type header".into())
        );
        let body = encode(&[(":message-type", "gossip")], b"{}");
        let (_, end) = run(&[&body]);
        assert_eq!(
            end,
            Err("malformed event stream: unknown event-stream :message-type \"gossip\"".into())
        );
    }
}
