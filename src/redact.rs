//! The one place secrets are removed from outgoing text.
//!
//! Every configured secret value (API keys, custom header values, credentials in URLs) is
//! registered in a [`Redactor`] when a config takes effect, and the process-wide redactor is
//! *replaced* when the config is reloaded. Every string that leaves the process passes through
//! [`redact`]:
//! - log lines, at any level and in either format: [`RedactingMakeWriter`] wraps the log writer;
//! - probe outcomes (error, response model, finish reason, answer): [`redact_outcome`] runs once
//!   where the outcome is produced, so the status page, `/probe`, `probe` and metrics all see the
//!   redacted form;
//! - errors and results printed by the CLI: [`eprint`] and [`print`];
//! - panics: [`install_panic_hook`].
//!
//! Matching is literal and ASCII-case-insensitive, over each secret and the forms an echoing
//! server is likely to use: percent-encoded, JSON/logfmt-escaped, HTML-escaped, the credential
//! after an auth scheme (`Bearer X`, `Basic X`), the decoded `user:password` of a basic-auth
//! value and the base64 of URL userinfo. Secrets shorter than [`MIN_SECRET_LEN`] characters are
//! not matched: a one-letter "secret" would erase that letter from every message, and no real
//! credential is that short. A text cut short (`clip`, which ends in `…`) may end with the first
//! part of a secret; that part is redacted too when it is at least [`MIN_PARTIAL_LEN`]
//! characters long.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, LazyLock, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;

use crate::config::Loaded;
use crate::probe::Outcome;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Shortest secret that is matched, in characters.
pub const MIN_SECRET_LEN: usize = 8;

/// Shortest leading part of a secret that is redacted where a text was cut short.
pub const MIN_PARTIAL_LEN: usize = 6;

/// Request headers whose values describe the request rather than authorize it: their values
/// (`application/json`, `text/event-stream`, a version date) are not registered as secrets.
const DESCRIPTIVE_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "anthropic-beta",
    "anthropic-version",
    "cache-control",
    "connection",
    "content-type",
    "openai-beta",
    "user-agent",
];

/// Query parameter names whose values are credentials (compared without case).
const CREDENTIAL_PARAMS: &[&str] = &[
    "key",
    "api-key",
    "api_key",
    "apikey",
    "token",
    "access_token",
    "auth",
    "password",
    "secret",
    "sig",
    "signature",
    "code",
];

/// A set of secret values and a matcher over them and their encodings.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The secrets as configured (before encoding), for [`Redactor::union`].
    secrets: BTreeSet<String>,
    /// Every form that is matched; index-aligned with the matcher's patterns.
    patterns: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the values themselves.
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for `secrets`. Values shorter than [`MIN_SECRET_LEN`] characters (after
    /// trimming) are ignored.
    pub fn new<I, S>(secrets: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let secrets: BTreeSet<String> = secrets
            .into_iter()
            .map(|s| s.as_ref().trim().to_string())
            .filter(|s| long_enough(s))
            .collect();
        let mut forms = BTreeSet::new();
        for s in &secrets {
            forms.insert(s.clone());
            forms.insert(percent_encode(s));
            forms.insert(json_escape(s, false));
            forms.insert(json_escape(s, true));
            forms.insert(html_escape(s));
        }
        let patterns: Vec<String> = forms.into_iter().collect();
        let matcher = if patterns.is_empty() {
            None
        } else {
            // Building fails only past the matcher's size limits, far beyond a config's secrets;
            // fall back to the slow but complete scan rather than to no redaction.
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(true)
                .build(&patterns)
                .ok()
        };
        Redactor {
            secrets,
            patterns,
            matcher,
        }
    }

    /// Every secret of a loaded config: target API keys and header values (and the credential
    /// inside an `Authorization`-style value), credential-named query parameters, credentials in
    /// server URLs and the simulator's API key.
    pub fn from_config(loaded: &Loaded) -> Redactor {
        let mut s = Vec::new();
        for t in &loaded.targets {
            target_secrets(t, &mut s);
        }
        for srv in &loaded.servers {
            url_secrets(&srv.url, &mut s);
        }
        if let Some(k) = loaded.simulator.as_ref().and_then(|c| c.api_key.as_ref()) {
            s.push(k.expose().to_string());
        }
        // Every OTLP header value is treated as a credential (a tenant ID is harmless redacted).
        for (_, v) in loaded.otlp.iter().flat_map(|o| o.headers.iter()) {
            header_value_secrets(v.expose(), &mut s);
        }
        Redactor::new(s)
    }

    /// The secrets of one target (for one-shot commands that probe a single target).
    pub fn from_target(t: &crate::config::Target) -> Redactor {
        let mut s = Vec::new();
        target_secrets(t, &mut s);
        Redactor::new(s)
    }

    /// A redactor for the secrets of both.
    pub fn union(&self, other: &Redactor) -> Redactor {
        Redactor::new(self.secrets.iter().chain(other.secrets.iter()))
    }

    /// How many secrets (not counting their encodings) are matched.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether no secret is matched.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by [`REDACTED`]; borrowed when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.patterns.is_empty() || text.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out: Option<String> = None;
        let mut last = 0;
        let push = |out: &mut Option<String>, from: usize, to: usize, last: &mut usize| {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[*last..from]);
            o.push_str(REDACTED);
            *last = to;
        };
        match &self.matcher {
            Some(ac) => {
                for m in ac.find_iter(text) {
                    push(&mut out, m.start(), m.end(), &mut last);
                }
            }
            None => {
                let lower = text.to_ascii_lowercase();
                let mut at = 0;
                while at < lower.len() {
                    let hit = self
                        .patterns
                        .iter()
                        .filter_map(|p| {
                            lower[at..]
                                .find(&p.to_ascii_lowercase())
                                .map(|i| (at + i, p.len()))
                        })
                        .min_by_key(|&(i, len)| (i, usize::MAX - len));
                    let Some((i, len)) = hit else { break };
                    push(&mut out, i, i + len, &mut last);
                    at = i + len;
                }
            }
        }
        let text = match out {
            Some(mut o) => {
                o.push_str(&text[last..]);
                Cow::Owned(o)
            }
            None => Cow::Borrowed(text),
        };
        match self.redact_cut_tails(&text) {
            Some(t) => Cow::Owned(t),
            None => text,
        }
    }

    /// Redacts the leading part of a secret where a text was cut short: just before each `…`
    /// and at the very end.
    fn redact_cut_tails(&self, text: &str) -> Option<String> {
        let mut ends: Vec<usize> = text.match_indices('…').map(|(i, _)| i).collect();
        ends.push(text.len());
        // A long answer may hold many ellipses; cuts are rare and sit at the end.
        if ends.len() > 64 {
            ends.drain(..ends.len() - 64);
        }
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        for &end in &ends {
            let longest = self
                .patterns
                .iter()
                .filter_map(|p| partial_before(text, end, p))
                .max();
            if let Some(k) = longest {
                cuts.push((end - k, end));
            }
        }
        if cuts.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (from, to) in cuts {
            if from < last {
                continue;
            }
            out.push_str(&text[last..from]);
            out.push_str(REDACTED);
            last = to;
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

/// The length of the longest proper prefix of `secret` (at least [`MIN_PARTIAL_LEN`] bytes)
/// that `text` ends with just before byte `end`.
fn partial_before(text: &str, end: usize, secret: &str) -> Option<usize> {
    let head = text.as_bytes().get(..end)?;
    let s = secret.as_bytes();
    (MIN_PARTIAL_LEN..s.len())
        .rev()
        .find(|&k| k <= head.len() && head[head.len() - k..].eq_ignore_ascii_case(&s[..k]))
        .filter(|&k| text.is_char_boundary(end - k))
}

fn long_enough(s: &str) -> bool {
    s.chars().count() >= MIN_SECRET_LEN
}

/// A header whose value describes the request: a well-known descriptive header, or one of the
/// simulator's `x-sim-*` controls (fault names and durations, which also appear in results and
/// would otherwise be redacted there).
fn is_descriptive_header(name: &str) -> bool {
    DESCRIPTIVE_HEADERS
        .iter()
        .any(|d| d.eq_ignore_ascii_case(name))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("x-sim-"))
}

fn target_secrets(t: &crate::config::Target, out: &mut Vec<String>) {
    if let Some(k) = &t.api_key {
        out.push(k.expose().to_string());
    }
    // Header values are treated as credentials (the config's `Debug` hides them too): only the
    // header's author knows which ones are. Only well-known descriptive headers are exempt.
    // Journey steps add headers of their own to their requests.
    let step_headers = t
        .journeys
        .iter()
        .flat_map(|(j, _)| j.steps.iter().flat_map(|s| s.headers.iter()));
    for (k, v) in t.headers.iter().chain(step_headers) {
        if !is_descriptive_header(k) {
            header_value_secrets(v, out);
        }
    }
    for (k, v) in &t.query {
        if is_credential_param(k) {
            out.push(v.clone());
        }
    }
    if let crate::config::BaseUrl::Url(u) = &t.base_url {
        url_secrets(u, out);
    }
}

/// A header value, and for `SCHEME CREDENTIAL` values the credential alone; a basic-auth
/// credential is decoded and its `user:password` and password added.
fn header_value_secrets(value: &str, out: &mut Vec<String>) {
    let value = value.trim();
    out.push(value.to_string());
    let Some((scheme, cred)) = value.split_once(' ') else {
        return;
    };
    let cred = cred.trim();
    out.push(cred.to_string());
    if scheme.eq_ignore_ascii_case("basic") {
        if let Ok(plain) = base64::engine::general_purpose::STANDARD.decode(cred) {
            if let Ok(plain) = String::from_utf8(plain) {
                if let Some((_, password)) = plain.split_once(':') {
                    out.push(password.to_string());
                }
                out.push(plain);
            }
        }
    }
}

/// Credentials in a URL: the userinfo (`user:password`, the password alone and the base64 form
/// a client sends as basic auth) and credential-named query parameters.
fn url_secrets(url: &str, out: &mut Vec<String>) {
    let Ok(u) = reqwest::Url::parse(url.trim()) else {
        return;
    };
    if let Some(p) = u.password() {
        let user = percent_decode(u.username());
        let pass = percent_decode(p);
        let pair = format!("{user}:{pass}");
        out.push(base64::engine::general_purpose::STANDARD.encode(&pair));
        out.push(pair);
        out.push(pass);
        out.push(p.to_string());
    } else if !u.username().is_empty() {
        // A lone user part is a token in some schemes (`https://TOKEN@host`).
        out.push(percent_decode(u.username()));
    }
    for (k, v) in u.query_pairs() {
        if is_credential_param(&k) {
            out.push(v.into_owned());
        }
    }
}

fn is_credential_param(name: &str) -> bool {
    CREDENTIAL_PARAMS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
}

fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The form a JSON encoder (or the logfmt quoting) writes; some encoders also escape `/`.
fn json_escape(s: &str, slash: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '/' if slash => o.push_str("\\/"),
            c => o.push(c),
        }
    }
    o
}

/// A URL fit for printing: no user info, no query (either may carry a key).
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "<invalid URL>".to_string(),
    }
}

/// Escapes text for HTML (and SVG) element and attribute content. The one escaping of every
/// page inferprobe serves or writes, so the redactor knows the escaped form of each secret.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// The process-wide redactor

static CURRENT: LazyLock<RwLock<Arc<Redactor>>> =
    LazyLock::new(|| RwLock::new(Arc::new(Redactor::default())));

/// Makes `r` the process-wide redactor, replacing the previous one (on reload, the secrets of
/// the old config are no longer matched once the old config has stopped).
pub fn install(r: Redactor) {
    let r = Arc::new(r);
    match CURRENT.write() {
        Ok(mut g) => *g = r,
        Err(poisoned) => *poisoned.into_inner() = r,
    }
}

/// Adds the secrets of `r` to the process-wide redactor (while an old and a new config both
/// run, during a reload).
pub fn extend(r: &Redactor) {
    install(current().union(r));
}

/// The process-wide redactor.
pub fn current() -> Arc<Redactor> {
    match CURRENT.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// `text` with every configured secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    current().redact(text)
}

/// Redacts, in place, every string of an outcome that came from the network.
pub fn redact_outcome(o: &mut Outcome) {
    let r = current();
    if r.is_empty() {
        return;
    }
    let fix = |s: &mut String| {
        if let Cow::Owned(v) = r.redact(s) {
            *s = v;
        }
    };
    if let Some(e) = o.error.as_mut() {
        fix(e);
    }
    if let Some(m) = o.response_model.as_mut() {
        fix(m);
    }
    if let Some(f) = o.finish_reason.as_mut() {
        fix(f);
    }
    fix(&mut o.answer);
}

/// Writes `args` to stderr, redacted, with a newline (the CLI's `eprintln!`).
pub fn eprint(args: fmt::Arguments<'_>) {
    let text = fmt::format(args);
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{}", redact(&text));
}

/// Writes `args` to stdout, redacted, as is (the CLI's `print!`).
pub fn print(args: fmt::Arguments<'_>) {
    let text = fmt::format(args);
    let mut out = io::stdout().lock();
    let _ = out.write_all(redact(&text).as_bytes());
    let _ = out.flush();
}

// ---------------------------------------------------------------------------------------------
// Logs

/// A `MakeWriter` whose writers redact each log line before passing it on.
#[derive(Clone, Debug)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        RedactingMakeWriter { inner }
    }
}

impl<'a, M> tracing_subscriber::fmt::MakeWriter<'a> for RedactingMakeWriter<M>
where
    M: tracing_subscriber::fmt::MakeWriter<'a>,
{
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer_for(meta))
    }
}

/// Buffers one formatted event and writes it redacted when flushed or dropped, so a secret is
/// matched even if the formatter writes the line in several pieces.
pub struct RedactingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    fn new(inner: W) -> Self {
        RedactingWriter {
            inner,
            buf: Vec::new(),
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let text = String::from_utf8_lossy(&buf);
        self.inner.write_all(redact(&text).as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.emit();
    }
}

// ---------------------------------------------------------------------------------------------
// Panics

/// Replaces the panic hook with one that prints the message redacted (in the standard hook's
/// layout, with a backtrace when `RUST_BACKTRACE` asks for one).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let mut err = io::stderr().lock();
        let _ = err.write_all(panic_report(info).as_bytes());
    }));
}

/// The redacted text the panic hook prints for `info`.
pub fn panic_report(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_string());
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    let location = info
        .location()
        .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let backtrace = std::backtrace::Backtrace::capture();
    let tail = match backtrace.status() {
        std::backtrace::BacktraceStatus::Captured => format!("stack backtrace:\n{backtrace}\n"),
        _ => "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
            .to_string(),
    };
    let text = format!("thread '{name}' panicked{location}:\n{msg}\n{tail}");
    redact(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-test-0123456789abcdef";

    #[test]
    fn replaces_every_occurrence_and_keeps_the_rest() {
        let r = Redactor::new([KEY]);
        assert_eq!(
            r.redact(&format!("a {KEY} b Bearer {KEY}")),
            "a <redacted> b Bearer <redacted>"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn short_and_empty_secrets_are_ignored() {
        let r = Redactor::new(["", "  ", "abc", "1234567"]);
        assert!(r.is_empty());
        assert_eq!(r.redact("abc 1234567"), "abc 1234567");
        assert_eq!(
            Redactor::new(["12345678"]).redact("x12345678y"),
            "x<redacted>y"
        );
    }

    #[test]
    fn encodings_are_matched() {
        let secret = "k3y/with+\"odd\"&chars";
        let r = Redactor::new([secret]);
        for form in [
            secret.to_string(),
            percent_encode(secret),
            json_escape(secret, false),
            json_escape(secret, true),
            html_escape(secret),
            secret.to_ascii_uppercase(),
        ] {
            assert_eq!(r.redact(&format!("[{form}]")), "[<redacted>]", "{form}");
        }
        assert_eq!(percent_encode("a/b+c"), "a%2Fb%2Bc");
        assert_eq!(
            Redactor::new(["a/b+c-long"]).redact("q=a%2fb%2bc-long"),
            "q=<redacted>"
        );
    }

    #[test]
    fn overlapping_secrets_take_the_longest() {
        let r = Redactor::new(["abcdefgh", "abcdefghijkl"]);
        assert_eq!(r.redact("xabcdefghijkly"), "x<redacted>y");
        assert_eq!(r.redact("xabcdefghy"), "x<redacted>y");
    }

    #[test]
    fn basic_auth_and_scheme_credentials() {
        let mut s = Vec::new();
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:hunter2-long");
        header_value_secrets(&format!("Basic {b64}"), &mut s);
        let r = Redactor::new(&s);
        assert_eq!(r.redact(&format!("got {b64}")), "got <redacted>");
        assert_eq!(r.redact("pw hunter2-long"), "pw <redacted>");
        assert_eq!(r.redact("alice:hunter2-long"), "<redacted>");

        let mut s = Vec::new();
        header_value_secrets("Bearer tok-0123456789", &mut s);
        assert_eq!(
            Redactor::new(&s).redact("bad token tok-0123456789"),
            "bad token <redacted>"
        );
    }

    #[test]
    fn target_secrets_skip_descriptive_headers() {
        let loaded = crate::config::load_str_with(
            "journeys:\n  j:\n    steps:\n      - {name: a, prompt: hi, headers: {X-Step-Token: st-0123456789, X-Sim-Fault: http_5xx}}\ntargets:\n  - name: t\n    dialect: openai-chat\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    api_key: sk-inline-0123456789\n    headers: {Accept: text/event-stream, X-Org: org-0123456789}\n    query: {api-version: 2024-10-21, key: qk-0123456789}\n    scenarios: [default]\n    journeys: [j]\nscenarios:\n  default: {prompt: hi}\n",
            "t.yml",
            &crate::config::Environment {
                base_dir: std::path::Path::new("."),
                var: &|_: &str| None,
                secrets_required: true,
            },
        )
        .unwrap();
        let r = Redactor::from_config(&loaded);
        assert_eq!(
            r.redact("sk-inline-0123456789 org-0123456789 qk-0123456789 st-0123456789"),
            "<redacted> <redacted> <redacted> <redacted>"
        );
        // The simulator's controls name faults, which are also results.
        assert_eq!(r.redact("result http_5xx"), "result http_5xx");
        assert_eq!(
            r.redact("text/event-stream 2024-10-21"),
            "text/event-stream 2024-10-21"
        );
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn url_userinfo_and_credential_params() {
        let mut s = Vec::new();
        url_secrets(
            "http://scraper:p%40ss-word-1@127.0.0.1:9/metrics?key=qk-0123456789&x=plainvalue1",
            &mut s,
        );
        let r = Redactor::new(&s);
        let b64 = base64::engine::general_purpose::STANDARD.encode("scraper:p@ss-word-1");
        assert_eq!(r.redact(&format!("auth {b64}")), "auth <redacted>");
        assert_eq!(r.redact("p@ss-word-1"), "<redacted>");
        assert_eq!(r.redact("p%40ss-word-1"), "<redacted>");
        assert_eq!(r.redact("key=qk-0123456789"), "key=<redacted>");
        assert_eq!(r.redact("x=plainvalue1"), "x=plainvalue1");
    }

    #[test]
    fn a_secret_cut_short_is_redacted_too() {
        let r = Redactor::new([KEY]);
        let cut = &KEY[..10];
        assert_eq!(r.redact(&format!("bad key {cut}…")), "bad key <redacted>…");
        assert_eq!(r.redact(&format!("bad key {cut}")), "bad key <redacted>");
        assert_eq!(
            r.redact(&format!("error=\"bad key {cut}…\" code=401")),
            "error=\"bad key <redacted>…\" code=401"
        );
        // Below the partial minimum the text is kept.
        assert_eq!(r.redact("ends in sk-te…"), "ends in sk-te…");
        // A full match and a cut one in the same text.
        assert_eq!(
            r.redact(&format!("{KEY} and {cut}…")),
            "<redacted> and <redacted>…"
        );
    }

    #[test]
    fn union_keeps_both() {
        let a = Redactor::new(["first-secret"]);
        let b = Redactor::new(["second-secret"]);
        let u = a.union(&b);
        assert_eq!(
            u.redact("first-secret second-secret"),
            "<redacted> <redacted>"
        );
        assert!(!format!("{u:?}").contains("secret\""));
    }

    #[test]
    fn fallback_scan_matches_like_the_automaton() {
        let mut r = Redactor::new(["abcdefgh", "abcdefghijkl", KEY]);
        r.matcher = None;
        assert_eq!(
            r.redact(&format!("xabcdefghijkly {} ABCDEFGH", KEY.to_uppercase())),
            "x<redacted>y <redacted> <redacted>"
        );
    }

    #[test]
    fn writer_redacts_a_line_written_in_pieces() {
        // The only unit test that installs a process-wide redactor; its one secret appears in
        // no other test.
        install(Redactor::new([KEY]));
        let line = format!("level=warn error=\"echo {KEY}\"\n");
        let (a, b) = line.split_at(24);
        let mut sink = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut sink);
            w.write_all(a.as_bytes()).unwrap();
            w.write_all(b.as_bytes()).unwrap();
        }
        assert_eq!(
            String::from_utf8(sink).unwrap(),
            "level=warn error=\"echo <redacted>\"\n"
        );
    }
}
