//! Property tests over every parser that reads bytes from outside: the SSE framer, each dialect
//! decoder, the Prometheus text parser (and the normalization behind it), the config and web
//! config loaders, and every load-test importer.
//!
//! Inputs are random, or recorded fixtures with random structural mutations (a value replaced
//! by an odd one, a key dropped, a line deleted or duplicated), so the cases reach deep into each
//! format rather than failing at the first byte. The properties: nothing panics, what comes out
//! is bounded by what went in, and SSE framing does not depend on how the bytes were chunked.
//!
//! `cargo test --test fuzz` runs a few hundred cases per property; `scripts/fuzz.sh` runs many
//! more (`PROPTEST_CASES`).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{stream, FutureExt, StreamExt};
use inferprobe::collect::server::{normalize, parse as prom};
use inferprobe::config::servers::ServerKind;
use inferprobe::config::{self, Environment};
use inferprobe::probe::dialect::{DialectKind, FramedEvent, Signal};
use inferprobe::probe::framing::{sse, FrameError, MAX_EVENT_BYTES};
use inferprobe::thresholds::formats::{self, Format};
use inferprobe::thresholds::{self, Options};
use inferprobe::webconfig;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// `PROPTEST_CASES` when set (the long run), else `default`.
fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // A failure is turned into a named regression test by hand, not a file written in CI.
        failure_persistence: None,
        ..Config::default()
    }
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir` (recursively) whose name ends with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every object key in `v`, recursively.
fn keys_of(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                keys_of(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keys_of(v, out)),
        _ => {}
    }
}

/// Every string value in `v`, recursively.
fn strings_of(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => m.values().for_each(|v| strings_of(v, out)),
        Value::Array(a) => a.iter().for_each(|v| strings_of(v, out)),
        Value::String(s) if s.len() <= 64 => {
            out.insert(s.clone());
        }
        _ => {}
    }
}

/// Numbers that break naive arithmetic: zero, negatives, extremes, fractions.
fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        select(vec![
            Value::from(0),
            Value::from(-1),
            Value::from(1),
            Value::from(i64::MIN),
            Value::from(i64::MAX),
            Value::from(u64::MAX),
            Value::from(1e308),
            Value::from(-1e308),
            Value::from(1e-308),
            Value::from(0.5),
            Value::from(-0.0),
            Value::from(4_294_967_296u64),
        ]),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

/// A JSON-ish value whose keys come from `keys` and whose strings come from `strings` or are
/// random.
fn json(keys: Vec<String>, strings: Vec<String>) -> BoxedStrategy<Value> {
    let strings = if strings.is_empty() {
        vec![String::new()]
    } else {
        strings
    };
    let keys = if keys.is_empty() {
        vec!["k".to_string()]
    } else {
        keys
    };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        odd_number(),
        select(strings).prop_map(Value::String),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((select(keys.clone()), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// One structural change to a JSON document.
#[derive(Clone, Debug)]
enum Mutation {
    /// Replace the node with this value.
    Replace(Value),
    /// Drop the node from its parent (the root becomes `null`).
    Remove,
    /// Replace the node with an array or object holding it twice.
    Double,
}

fn mutation(values: BoxedStrategy<Value>) -> impl Strategy<Value = (usize, Mutation)> {
    (
        any::<usize>(),
        prop_oneof![
            6 => values.prop_map(Mutation::Replace),
            3 => Just(Mutation::Remove),
            1 => Just(Mutation::Double),
        ],
    )
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Object(m) => m.values().map(count_nodes).sum(),
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `m` at the `n`-th node in pre-order; true once applied.
fn apply_at(v: &mut Value, n: &mut usize, m: &Mutation) -> bool {
    if *n == 0 {
        match m {
            Mutation::Replace(x) => *v = x.clone(),
            Mutation::Remove => *v = Value::Null,
            Mutation::Double => *v = Value::Array(vec![v.clone(), v.clone()]),
        }
        return true;
    }
    *n -= 1;
    match v {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if *n == 0 && matches!(m, Mutation::Remove) {
                    map.remove(&k);
                    return true;
                }
                if let Some(child) = map.get_mut(&k) {
                    if apply_at(child, n, m) {
                        return true;
                    }
                }
            }
        }
        Value::Array(a) => {
            for i in 0..a.len() {
                if *n == 0 && matches!(m, Mutation::Remove) {
                    a.remove(i);
                    return true;
                }
                if apply_at(&mut a[i], n, m) {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

fn mutate(doc: &Value, mutations: &[(usize, Mutation)]) -> Value {
    let mut doc = doc.clone();
    for (at, m) in mutations {
        let mut n = at % count_nodes(&doc);
        apply_at(&mut doc, &mut n, m);
    }
    doc
}

/// One line-level change to a text document.
#[derive(Clone, Debug)]
enum LineEdit {
    Delete,
    Duplicate,
    /// Insert text at a character offset of the line.
    Insert(usize, String),
    /// Cut the line at a character offset.
    Truncate(usize),
}

fn line_edit(inserts: Vec<String>) -> impl Strategy<Value = (usize, LineEdit)> {
    (
        any::<usize>(),
        prop_oneof![
            Just(LineEdit::Delete),
            Just(LineEdit::Duplicate),
            (any::<usize>(), select(inserts)).prop_map(|(i, s)| LineEdit::Insert(i, s)),
            (any::<usize>(), "\\PC{0,6}").prop_map(|(i, s)| LineEdit::Insert(i, s)),
            any::<usize>().prop_map(LineEdit::Truncate),
        ],
    )
}

fn edit_lines(text: &str, edits: &[(usize, LineEdit)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (at, e) in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = at % lines.len();
        let char_at = |line: &str, k: usize| {
            let n = line.chars().count() + 1;
            line.char_indices()
                .map(|(b, _)| b)
                .chain([line.len()])
                .nth(k % n)
                .unwrap_or(line.len())
        };
        match e {
            LineEdit::Delete => {
                lines.remove(i);
            }
            LineEdit::Duplicate => lines.insert(i, lines[i].clone()),
            LineEdit::Insert(k, s) => {
                let b = char_at(&lines[i], *k);
                lines[i].insert_str(b, s);
            }
            LineEdit::Truncate(k) => {
                let b = char_at(&lines[i], *k);
                lines[i].truncate(b);
            }
        }
    }
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------------
// SSE framing

type Framed = (Vec<(String, String)>, Option<String>);

/// Frames `input` cut at `cuts` (byte offsets, any order, out-of-range ones wrap).
fn frame_split(input: &[u8], cuts: &[usize]) -> Framed {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    at.dedup();
    let chunks: Vec<Result<(Instant, Bytes), Infallible>> = at
        .windows(2)
        .map(|w| Ok((Instant::now(), Bytes::copy_from_slice(&input[w[0]..w[1]]))))
        .collect();
    let results = sse::frame(stream::iter(chunks))
        .collect::<Vec<_>>()
        .now_or_never()
        .expect("an always-ready input frames without waiting");
    let mut events = Vec::new();
    let mut error = None;
    for r in results {
        match r {
            Ok(e) => {
                assert!(error.is_none(), "an event after the error");
                events.push((e.event, e.data));
            }
            Err(e) => {
                assert!(error.is_none(), "two errors");
                error = Some(e.to_string());
            }
        }
    }
    (events, error)
}

/// An independent reading of the event-stream grammar over a whole, valid UTF-8 input, with
/// the framer's end-of-stream rule; the error is only its kind (`unterminated`).
fn reference(input: &str) -> (Vec<(String, String)>, Option<&'static str>) {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut lines = Vec::new();
    let mut rest = input;
    let partial = loop {
        match rest.find(['\r', '\n']) {
            None => break rest,
            Some(i) => {
                lines.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
        }
    };
    let (mut events, mut event, mut data, mut has_data) =
        (Vec::new(), String::new(), String::new(), false);
    for line in lines {
        if line.is_empty() {
            if has_data {
                events.push((std::mem::take(&mut event), std::mem::take(&mut data)));
                has_data = false;
            }
            event.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "data" => {
                if has_data {
                    data.push('\n');
                }
                data.push_str(value);
                has_data = true;
            }
            "event" => event = value.to_string(),
            _ => {}
        }
    }
    let cut = !partial.is_empty()
        && !partial.starts_with(':')
        && !partial
            .trim_matches(|c: char| c.is_ascii_whitespace())
            .is_empty();
    (events, (has_data || cut).then_some("unterminated"))
}

/// Valid event-stream text: field lines, comments, blank lines, every line ending, an optional
/// BOM, and sometimes a cut-off last line.
fn sse_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => "\\PC{0,10}".prop_map(|s| format!("data: {s}")),
        2 => "\\PC{0,6}".prop_map(|s| format!("data:{s}")),
        1 => Just("data".to_string()),
        2 => "[a-z_]{0,8}".prop_map(|s| format!("event: {s}")),
        1 => "\\PC{0,6}".prop_map(|s| format!(":{s}")),
        4 => Just(String::new()),
        1 => select(vec!["id: 7", "retry: 10", "data :x", " data: y", "event", "\u{feff}data: z"])
            .prop_map(str::to_string),
        1 => "[a-z: ]{0,8}",
    ];
    let eol = select(vec!["\n", "\r\n", "\r"]);
    (
        any::<bool>(),
        prop::collection::vec((line, eol), 0..24),
        prop_oneof![Just(String::new()), "\\PC{0,8}", "data: \\PC{0,8}"],
    )
        .prop_map(|(bom, lines, tail)| {
            let mut s = if bom {
                "\u{feff}".to_string()
            } else {
                String::new()
            };
            for (l, e) in lines {
                s.push_str(&l);
                s.push_str(e);
            }
            s.push_str(&tail);
            s
        })
}

proptest! {
    #![proptest_config(config(512))]

    /// The same events and the same ending however the bytes are cut, and the events the
    /// grammar says.
    #[test]
    fn sse_framing_does_not_depend_on_the_chunking(
        text in sse_text(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = frame_split(text.as_bytes(), &[]);
        let split = frame_split(text.as_bytes(), &cuts);
        prop_assert_eq!(&split, &whole);
        let one_byte: Vec<usize> = (0..text.len()).collect();
        prop_assert_eq!(&frame_split(text.as_bytes(), &one_byte), &whole);
        let (events, end) = reference(&text);
        prop_assert_eq!(&whole.0, &events);
        let got_end = whole.1.as_deref().map(|e| {
            if e.starts_with("the stream ended inside an event") { "unterminated" } else { "other" }
        });
        prop_assert_eq!(got_end, end, "{:?}", whole.1);
    }

    /// Arbitrary bytes under arbitrary cuts: no panic, the input ends, what comes out is no
    /// bigger than what went in, and the split does not change it.
    #[test]
    fn sse_framing_survives_arbitrary_bytes(
        bytes in prop::collection::vec(
            prop_oneof![any::<u8>(), select(b"\r\n: datev".to_vec())], 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = frame_split(&bytes, &[]);
        let split = frame_split(&bytes, &cuts);
        prop_assert_eq!(&split, &whole);
        let out: usize = whole.0.iter().map(|(e, d)| e.len() + d.len()).sum();
        prop_assert!(out <= bytes.len());
    }
}

/// Feeds `chunk` forever; returns the framing error and how many bytes were read before it.
fn feed_forever(chunk: Bytes) -> (Option<FrameError>, usize) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let input = stream::repeat(chunk).map(move |b| {
        counter.fetch_add(b.len(), Ordering::Relaxed);
        Ok::<_, Infallible>((Instant::now(), b))
    });
    let mut events = Box::pin(sse::frame(input));
    let err = loop {
        match events.next().now_or_never() {
            Some(Some(Ok(_))) => {}
            Some(Some(Err(e))) => break Some(e),
            Some(None) | None => break None,
        }
    };
    (err, pulled.load(Ordering::Relaxed))
}

/// A line that never ends is an error once it passes `MAX_EVENT_BYTES`, before the framer has
/// read much more than that: memory stays bounded whatever the chunk size.
#[test]
fn sse_endless_line_is_cut_off_at_the_limit() {
    for size in [1000, 4096, 65_537] {
        let (err, pulled) = feed_forever(Bytes::from(vec![b'x'; size]));
        assert!(
            matches!(&err, Some(FrameError::Malformed(m)) if m.starts_with("line longer than")),
            "{size}: {err:?}"
        );
        assert!(
            pulled <= MAX_EVENT_BYTES + 2 * size,
            "{size}: read {pulled} bytes"
        );
    }
}

/// An event whose `data:` lines never stop is an error once its data passes the limit.
#[test]
fn sse_endless_event_is_cut_off_at_the_limit() {
    let mut line = b"data: ".to_vec();
    line.extend(std::iter::repeat_n(b'y', 64 * 1024));
    line.push(b'\n');
    let size = line.len();
    let (err, pulled) = feed_forever(Bytes::from(line));
    assert!(
        matches!(&err, Some(FrameError::Malformed(m)) if m.starts_with("event data longer than")),
        "{err:?}"
    );
    assert!(pulled <= MAX_EVENT_BYTES + 2 * size, "read {pulled} bytes");
}

// ---------------------------------------------------------------------------------------------
// Dialect decoders

/// A recorded transcript: file name, dialect, framed (event, data) pairs.
type Transcript = (String, DialectKind, Vec<(String, String)>);

/// The recorded transcripts, framed.
fn transcripts() -> &'static [Transcript] {
    static T: OnceLock<Vec<Transcript>> = OnceLock::new();
    T.get_or_init(|| {
        files(&repo("tests/fixtures/sse"), ".txt")
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let dialect = if name.starts_with("anthropic") {
                    DialectKind::AnthropicMessages
                } else if name.starts_with("completions") {
                    DialectKind::OpenaiCompletions
                } else {
                    DialectKind::OpenaiChat
                };
                let (events, _) = frame_split(read(&p).as_bytes(), &[]);
                assert!(!events.is_empty(), "{name}");
                (name, dialect, events)
            })
            .collect()
    })
}

/// Keys, string values and event names seen in the transcripts.
fn sse_vocabulary() -> &'static (Vec<String>, Vec<String>, Vec<String>) {
    static V: OnceLock<(Vec<String>, Vec<String>, Vec<String>)> = OnceLock::new();
    V.get_or_init(|| {
        let (mut keys, mut strings, mut names) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (_, _, events) in transcripts() {
            for (event, data) in events {
                names.insert(event.clone());
                if let Ok(v) = serde_json::from_str::<Value>(data) {
                    keys_of(&v, &mut keys);
                    strings_of(&v, &mut strings);
                }
            }
        }
        names.insert("error".to_string());
        strings.insert("[DONE]".to_string());
        (
            keys.into_iter().collect(),
            strings.into_iter().collect(),
            names.into_iter().collect(),
        )
    })
}

fn sse_json() -> BoxedStrategy<Value> {
    let (keys, strings, _) = sse_vocabulary();
    json(keys.clone(), strings.clone())
}

/// Decodes `events` with a fresh `dialect` decoder until the first error; checks that the
/// output text is no longer than the data that carried it.
fn decode(dialect: DialectKind, events: &[(String, String)]) -> Result<(), TestCaseError> {
    let mut decoder = dialect.decoder();
    let mut signals = Vec::new();
    let (mut data_bytes, mut out_bytes) = (0usize, 0usize);
    for (event, data) in events {
        data_bytes += data.len();
        signals.clear();
        if decoder
            .decode(&FramedEvent { event, data }, &mut signals)
            .is_err()
        {
            break;
        }
        for s in &signals {
            if let Signal::Output { text, .. } = s {
                out_bytes += text.len();
            }
        }
        prop_assert!(
            out_bytes <= data_bytes,
            "{}: {out_bytes} bytes of output from {data_bytes} bytes of data",
            dialect.as_str()
        );
    }
    Ok(())
}

/// Found by `decoders_survive_mutated_transcripts`: a token count given as a long non-ASCII
/// string was cut to 40 bytes inside a character for the error message, which panicked.
#[test]
fn usage_given_as_a_long_non_ascii_string_is_an_error_not_a_panic() {
    let data = format!(
        r#"{{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{{"prompt_tokens":"{}","completion_tokens":1}}}}"#,
        "é".repeat(30)
    );
    for dialect in [DialectKind::OpenaiChat, DialectKind::OpenaiCompletions] {
        let mut out = Vec::new();
        let r = dialect.decoder().decode(
            &FramedEvent {
                event: "",
                data: &data,
            },
            &mut out,
        );
        let e = r.expect_err("a string is not a token count").to_string();
        assert!(e.contains("not a token count"), "{e}");
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Random JSON-ish events (keys and strings from the recorded streams) under every
    /// dialect.
    #[test]
    fn decoders_survive_random_events(
        events in prop::collection::vec(
            (select(sse_vocabulary().2.clone()), prop_oneof![
                4 => sse_json().prop_map(|v| v.to_string()),
                1 => "\\PC{0,24}",
            ]),
            1..8,
        ),
    ) {
        for dialect in DialectKind::ALL {
            decode(dialect, &events)?;
        }
    }

    /// Recorded streams with a few events changed.
    #[test]
    fn decoders_survive_mutated_transcripts(
        which in any::<usize>(),
        edits in prop::collection::vec(
            (any::<usize>(), mutation(sse_json())), 1..4),
    ) {
        let (_, dialect, events) = &transcripts()[which % transcripts().len()];
        let mut events = events.clone();
        for (i, m) in &edits {
            let i = i % events.len();
            if let Ok(v) = serde_json::from_str::<Value>(&events[i].1) {
                events[i].1 = mutate(&v, std::slice::from_ref(m)).to_string();
            }
        }
        decode(*dialect, &events)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format

fn prom_fixtures() -> &'static [String] {
    static F: OnceLock<Vec<String>> = OnceLock::new();
    F.get_or_init(|| {
        files(&repo("tests/fixtures/server_metrics"), ".txt")
            .iter()
            .map(|p| read(p))
            .collect()
    })
}

/// Metric names of the fixtures.
fn prom_names() -> &'static [String] {
    static N: OnceLock<Vec<String>> = OnceLock::new();
    N.get_or_init(|| {
        let mut names = BTreeSet::new();
        for text in prom_fixtures() {
            if let Ok(families) = prom::parse(text) {
                for f in families {
                    names.insert(f.name.clone());
                    for s in f.samples {
                        names.insert(s.name);
                    }
                }
            }
        }
        names.into_iter().collect()
    })
}

fn prom_value() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "0",
            "-1",
            "1",
            "NaN",
            "+Inf",
            "-Inf",
            "1e308",
            "-1e308",
            "1e-320",
            "18446744073709551616",
            "0.5",
            "-0",
            "1.",
            ".5",
            "1e",
            "--1",
        ])
        .prop_map(str::to_string),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
    ]
}

fn prom_line() -> impl Strategy<Value = String> {
    let name = select(prom_names().to_vec());
    let label = prop_oneof![
        (
            select(vec!["le", "quantile", "model_name", "engine", "gpu", "x"]),
            prom_value()
        )
            .prop_map(|(k, v)| format!("{k}=\"{v}\"")),
        ("[a-z_]{1,6}", "\\PC{0,6}")
            .prop_map(|(k, v)| format!("{k}=\"{}\"", v.replace(['"', '\\'], ""))),
    ];
    prop_oneof![
        4 => (name.clone(), prop::collection::vec(label, 0..3), prom_value(),
              prop::option::of(any::<i64>()))
            .prop_map(|(n, l, v, ts)| {
                let labels = if l.is_empty() { String::new() } else { format!("{{{}}}", l.join(",")) };
                match ts {
                    Some(ts) => format!("{n}{labels} {v} {ts}"),
                    None => format!("{n}{labels} {v}"),
                }
            }),
        1 => (name.clone(), select(vec!["counter", "gauge", "histogram", "summary", "untyped", "info", "x"]))
            .prop_map(|(n, t)| format!("# TYPE {n} {t}")),
        1 => (name, "\\PC{0,12}").prop_map(|(n, h)| format!("# HELP {n} {h}")),
        1 => "\\PC{0,20}",
    ]
}

/// Parses `text`; when it parses, normalizes it as every server kind.
fn parse_and_normalize(text: &str) {
    if let Ok(families) = prom::parse(text) {
        let _ = normalize::detect_kind(&families);
        for kind in [
            ServerKind::Vllm,
            ServerKind::Sglang,
            ServerKind::Tgi,
            ServerKind::Llamacpp,
            ServerKind::Triton,
        ] {
            let _ = normalize::normalize(kind, &families);
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Pages made of random sample, `# TYPE` and `# HELP` lines with the fixtures' names.
    #[test]
    fn prometheus_parser_survives_random_pages(
        lines in prop::collection::vec(prom_line(), 0..40),
    ) {
        parse_and_normalize(&lines.join("\n"));
    }

    /// Recorded pages with lines deleted, duplicated, cut or grown.
    #[test]
    fn prometheus_parser_survives_edited_pages(
        which in any::<usize>(),
        edits in prop::collection::vec(
            line_edit(vec![" NaN".into(), "{le=\"+Inf\"}".into(), " 1e400".into(), "\"".into(),
                           "\\".into(), "{".into(), "}".into(), " -1".into(), "# TYPE x histogram\n".into()]),
            1..6),
    ) {
        let text = &prom_fixtures()[which % prom_fixtures().len()];
        parse_and_normalize(&edit_lines(text, &edits));
    }

    /// Anything at all.
    #[test]
    fn prometheus_parser_survives_arbitrary_text(text in "\\PC{0,200}") {
        parse_and_normalize(&text);
    }
}

// ---------------------------------------------------------------------------------------------
// Config and web config

fn fixture_var(name: &str) -> Option<String> {
    match name {
        "INFERPROBE_TEST_KEY" => Some("sk-fixture-0123456789".to_string()),
        _ => None,
    }
}

fn load_config(text: &str) {
    let testdata = repo("config/testdata");
    let env = Environment {
        base_dir: &testdata,
        var: &fixture_var,
        secrets_required: true,
    };
    match config::load_str_with(text, "fuzz.yml", &env) {
        Ok(loaded) => {
            let _ = config::summary(&loaded);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The shipped configs and the good fixtures, as YAML text and as JSON values.
fn config_docs() -> &'static [(String, Value)] {
    static D: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    D.get_or_init(|| {
        let mut paths = vec![repo("config/example.yml"), repo("config/demo.yml")];
        paths.extend(files(&repo("config/testdata"), ".good.yml"));
        paths
            .iter()
            .map(|p| {
                let text = read(p);
                let value = serde_saphyr::from_str::<Value>(&text).unwrap_or(Value::Null);
                (text, value)
            })
            // The empty fixture has nothing to mutate.
            .filter(|(_, v)| v.is_object())
            .collect()
    })
}

fn config_json() -> BoxedStrategy<Value> {
    static V: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
    let (keys, strings) = V.get_or_init(|| {
        let (mut keys, mut strings) = (BTreeSet::new(), BTreeSet::new());
        for (_, v) in config_docs() {
            keys_of(v, &mut keys);
            strings_of(v, &mut strings);
        }
        for s in [
            "0s",
            "-1s",
            "1ns",
            "99999999999999h",
            "1.5s",
            "",
            "* * * * * *",
            "@every 0s",
            "http://",
            "http://[::1",
            "http://u:p@127.0.0.1/",
            "/dev/zero",
            "/",
            "..",
            "prompts",
            "{env: X}",
            "\u{0}",
        ] {
            strings.insert(s.to_string());
        }
        (keys.into_iter().collect(), strings.into_iter().collect())
    });
    json(keys.clone(), strings.clone())
}

fn webconfig_texts() -> &'static [String] {
    static W: OnceLock<Vec<String>> = OnceLock::new();
    W.get_or_init(|| {
        files(&repo("tests/fixtures/webconfig"), ".yml")
            .iter()
            .map(|p| read(p))
            .collect()
    })
}

/// The mutations start from documents that load: written back as JSON, each shipped config
/// and good fixture still loads, so a mutated one fails for the mutation, not the round trip.
#[test]
fn config_documents_load_as_json() {
    assert!(config_docs().len() >= 4);
    let testdata = repo("config/testdata");
    for (text, doc) in config_docs() {
        let env = Environment {
            base_dir: &testdata,
            var: &fixture_var,
            secrets_required: false,
        };
        if let Err(e) = config::load_str_with(&doc.to_string(), "fuzz.yml", &env) {
            panic!("{e}\nfrom:\n{text}");
        }
    }
}

proptest! {
    #![proptest_config(config(192))]

    /// The shipped configs with values replaced, keys dropped or doubled, written back as
    /// JSON (which is YAML).
    #[test]
    fn config_loader_survives_mutated_configs(
        which in any::<usize>(),
        edits in prop::collection::vec(mutation(config_json()), 1..4),
    ) {
        let (_, doc) = &config_docs()[which % config_docs().len()];
        load_config(&mutate(doc, &edits).to_string());
    }

    /// The shipped configs with lines deleted, duplicated, cut or grown (YAML syntax errors,
    /// odd indentation, anchors and tags).
    #[test]
    fn config_loader_survives_edited_yaml(
        which in any::<usize>(),
        edits in prop::collection::vec(
            line_edit(vec!["  ".into(), ": ".into(), "- ".into(), "&a ".into(), "*a".into(),
                           "!!binary ".into(), "<<: *a".into(), "\t".into(), "{".into(), "'".into(),
                           "\"".into(), "#".into(), "---\n".into(), "? ".into(), "|\n".into()]),
            1..6),
    ) {
        let (text, _) = &config_docs()[which % config_docs().len()];
        load_config(&edit_lines(text, &edits));
    }

    /// Anything at all.
    #[test]
    fn config_loader_survives_arbitrary_text(text in "\\PC{0,160}") {
        load_config(&text);
    }

    /// Web config files with lines edited.
    #[test]
    fn web_config_parser_survives_edited_files(
        which in any::<usize>(),
        edits in prop::collection::vec(
            line_edit(vec!["  ".into(), ": ".into(), "- ".into(), "$2y$31$".into(), "&a ".into(),
                           "*a".into(), "\"".into(), "0".into(), "-1".into()]),
            1..5),
    ) {
        let text = &webconfig_texts()[which % webconfig_texts().len()];
        if let Err(e) = webconfig::parse_str(&edit_lines(text, &edits)) {
            let _ = e.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Load-test importers

/// Each recorded result file that imports, with the format it was detected as (files kept to
/// pin an error message are left out).
fn loadtest_docs() -> &'static [(String, Format, Value)] {
    static D: OnceLock<Vec<(String, Format, Value)>> = OnceLock::new();
    D.get_or_init(|| {
        let docs: Vec<(String, Format, Value)> = files(&repo("tests/fixtures/loadtest"), ".json")
            .into_iter()
            .filter_map(|p| {
                let text = read(&p);
                let name = p.display().to_string();
                let imported = formats::parse(&name, &text, None).ok()?;
                let value: Value = serde_json::from_str(&text).ok()?;
                Some((name, imported.format, value))
            })
            .collect();
        for format in Format::ALL {
            assert!(
                docs.iter().any(|(_, f, _)| *f == format),
                "no recorded {format:?} result imports"
            );
        }
        docs
    })
}

fn loadtest_json() -> BoxedStrategy<Value> {
    static V: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
    let (keys, strings) = V.get_or_init(|| {
        let (mut keys, mut strings) = (BTreeSet::new(), BTreeSet::new());
        for (_, _, v) in loadtest_docs() {
            keys_of(v, &mut keys);
            strings_of(v, &mut strings);
        }
        (keys.into_iter().collect(), strings.into_iter().collect())
    });
    json(keys.clone(), strings.clone())
}

/// Imports `text` as `format` (and detected); what imports also goes through rule generation.
fn import(text: &str, format: Option<Format>) {
    match formats::parse("fuzz.json", text, format) {
        Ok(imported) => {
            let _ = thresholds::generate(vec![imported], &Options::default());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

proptest! {
    #![proptest_config(config(192))]

    /// Recorded result files with values replaced, keys dropped or doubled.
    #[test]
    fn importers_survive_mutated_results(
        which in any::<usize>(),
        edits in prop::collection::vec(mutation(loadtest_json()), 1..4),
    ) {
        let (_, format, doc) = &loadtest_docs()[which % loadtest_docs().len()];
        let text = mutate(doc, &edits).to_string();
        import(&text, Some(*format));
        import(&text, None);
    }

    /// Random JSON built from the keys and strings of every format, read as each format.
    #[test]
    fn importers_survive_random_json(doc in loadtest_json()) {
        let text = doc.to_string();
        for format in Format::ALL {
            import(&text, Some(format));
        }
        import(&text, None);
    }
}
