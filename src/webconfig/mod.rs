//! Web security: TLS, client certificates, basic auth, response headers and a rate limit, read
//! from `--web.config.file` in the format of the Prometheus exporter-toolkit, so one web config
//! file serves inferprobe and the exporters beside it.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths are taken from this file's directory
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.crt
//!   min_version: TLS13
//! http_server_config:
//!   http2: true
//!   headers: {X-Frame-Options: deny, X-Content-Type-Options: nosniff}
//! basic_auth_users:
//!   prometheus: $2y$10$...          # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! rate_limit: {interval: 100ms, burst: 20}
//! ```
//!
//! The protection covers every endpoint, `/-/healthy` included, as exporter-toolkit does.
//!
//! Where inferprobe differs from exporter-toolkit, and why:
//! - The file is re-read on `SIGHUP` and on `POST /-/reload` (with the daemon config), not on
//!   every request or connection: a bad edit is reported once and the running web config is
//!   kept, instead of failing requests until it is fixed. Rotated certificates are picked up on
//!   reload. Switching between plain HTTP and TLS needs a restart.
//! - TLS is rustls: `TLS10`/`TLS11`, CBC and RSA-key-exchange cipher suites and `CurveP521` are
//!   rejected with an error that says so, rather than silently ignored.
//! - `client_allowed_sans` is rejected: a client-certificate rule that is not enforced must not
//!   look as if it were.
//! - `client_auth_type` values that verify certificates need `client_ca_file` or `client_ca`.
//! - `rate_limit` is a token bucket per client address (IPv6 by /64), not one for the whole
//!   server, so a flood from one client cannot get every scrape answered 429.
//! - bcrypt costs above [`WARN_BCRYPT_COST`] load with a warning, above [`MAX_BCRYPT_COST`] they
//!   are refused; failed logins are limited per client address and bcrypt runs at most
//!   [`BCRYPT_CONCURRENCY`] at a time (see `auth`).
//!
//! `/-/reload` and `/probe` change state or send traffic, so beyond the file format there are two
//! flags, `--web.disable-reload` and `--web.disable-probe`, that make those endpoints answer 403.
//! They are flags, not keys in the file, so the file stays readable by exporter-toolkit tools.

mod auth;
mod serve;
mod tls;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use tracing::{error, info, warn};

use crate::config::types::humantime_serde_compat;

use auth::AuthCache;
pub use auth::{
    BCRYPT_CONCURRENCY, BCRYPT_WAIT, CHALLENGE, FAILED_LOGIN_BURST, FAILED_LOGIN_INTERVAL,
};
pub use serve::{connection_cap, raise_fd_limit, serve, ServeLimits};

/// The web config file as written: the exporter-toolkit schema.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    /// TLS; absent (or without certificate and key) means plain HTTP.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// HTTP/2 and extra response headers.
    #[serde(default)]
    pub http_server_config: Option<HttpServerConfig>,
    /// Users and their bcrypt password hashes; empty means no authentication.
    #[serde(default)]
    pub basic_auth_users: Option<BTreeMap<String, Redacted>>,
    /// A token bucket over all requests; excess requests get 429.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
}

/// `tls_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// Server certificate chain, PEM, inline (instead of `cert_file`).
    #[serde(default)]
    pub cert: Option<String>,
    /// Server private key, PEM, inline (instead of `key_file`).
    #[serde(default)]
    pub key: Option<Redacted>,
    /// CA certificates for client certificates, PEM, inline (instead of `client_ca_file`).
    #[serde(default)]
    pub client_ca: Option<String>,
    /// Server certificate chain file, PEM.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Server private key file, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Client certificate policy; default `NoClientCert`.
    #[serde(default)]
    pub client_auth_type: Option<ClientAuthType>,
    /// CA certificates for client certificates, PEM file.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Not supported; present only to reject it with a clear message.
    #[serde(default)]
    pub client_allowed_sans: Option<Vec<String>>,
    /// Lowest TLS version accepted; default `TLS12`.
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    /// Highest TLS version accepted; default `TLS13`.
    #[serde(default)]
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites by their IANA (Go) names, in preference order; TLS 1.3 suites are
    /// always enabled, as in Go.
    #[serde(default)]
    pub cipher_suites: Option<Vec<String>>,
    /// Whether the server's cipher suite order wins over the client's; default true.
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
    /// Key exchange groups in preference order (`X25519`, `CurveP256`, `CurveP384`).
    #[serde(default)]
    pub curve_preferences: Option<Vec<String>>,
}

/// `client_auth_type`, Go's `tls.ClientAuthType` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum ClientAuthType {
    /// No client certificate is asked for.
    NoClientCert,
    /// A certificate is asked for but neither required nor verified.
    RequestClientCert,
    /// A certificate is required but not verified.
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    /// A certificate is optional; one that is sent must verify against the client CA.
    VerifyClientCertIfGiven,
    /// A certificate is required and must verify against the client CA.
    RequireAndVerifyClientCert,
}

impl ClientAuthType {
    /// Whether the policy checks certificates against a CA.
    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuthType::VerifyClientCertIfGiven | ClientAuthType::RequireAndVerifyClientCert
        )
    }

    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthType::NoClientCert => "NoClientCert",
            ClientAuthType::RequestClientCert => "RequestClientCert",
            ClientAuthType::RequireAnyClientCert => "RequireAnyClientCert",
            ClientAuthType::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuthType::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }
}

/// `min_version` / `max_version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.0 (not supported by rustls).
    TLS10,
    /// TLS 1.1 (not supported by rustls).
    TLS11,
    /// TLS 1.2.
    TLS12,
    /// TLS 1.3.
    TLS13,
}

/// `http_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Offer HTTP/2 over TLS (ALPN `h2`); default true. Plain HTTP is always HTTP/1.1.
    #[serde(default)]
    pub http2: Option<bool>,
    /// Headers added to every response; a blank value leaves the header unset.
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// The response headers exporter-toolkit allows, and only those.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    /// `Content-Security-Policy`.
    #[serde(rename = "Content-Security-Policy", default)]
    pub content_security_policy: Option<String>,
    /// `X-Frame-Options`: `deny` or `sameorigin`.
    #[serde(rename = "X-Frame-Options", default)]
    pub x_frame_options: Option<String>,
    /// `X-Content-Type-Options`: `nosniff`.
    #[serde(rename = "X-Content-Type-Options", default)]
    pub x_content_type_options: Option<String>,
    /// `X-XSS-Protection`.
    #[serde(rename = "X-XSS-Protection", default)]
    pub x_xss_protection: Option<String>,
    /// `Strict-Transport-Security`.
    #[serde(rename = "Strict-Transport-Security", default)]
    pub strict_transport_security: Option<String>,
}

/// `rate_limit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Time between two requests (`100ms`); `0` or absent disables the limiter.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub interval: Option<Duration>,
    /// Requests allowed at once beyond the steady rate.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// bcrypt costs above this are accepted with a warning: cost 12 takes a few hundred
/// milliseconds on a current core, and each step doubles it.
pub const WARN_BCRYPT_COST: u32 = 12;

/// bcrypt costs above this are refused: at cost 15 a single check takes seconds, longer than
/// Prometheus' default scrape timeout, and each wrong password costs as much.
pub const MAX_BCRYPT_COST: u32 = 14;

/// A string that never appears in Debug output (private keys, password hashes).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A problem with the web config file: the file, the key and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct WebConfigError {
    /// The file as named on the command line.
    pub file: String,
    /// YAML path of the offending key (`tls_server_config.min_version`); empty for the file.
    pub path: String,
    /// Line, when the YAML parser knows it.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "web config {}: ", self.file)?;
        match (self.path.is_empty(), self.line) {
            (true, None) => write!(f, "{}", self.message),
            (true, Some(l)) => write!(f, "line {l}: {}", self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (false, Some(l)) => write!(f, "{} (line {l}): {}", self.path, self.message),
        }
    }
}

/// An error at a YAML path, before the file name is attached.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub(crate) path: String,
    pub(crate) line: Option<u64>,
    pub(crate) message: String,
}

impl Invalid {
    pub(crate) fn at(path: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }

    fn in_file(self, file: &str) -> WebConfigError {
        WebConfigError {
            file: file.to_string(),
            path: self.path,
            line: self.line,
            message: self.message,
        }
    }
}

/// Parses web config text (pure: no file is read).
pub fn parse_str(text: &str) -> Result<WebConfigFile, WebConfigError> {
    parse(text).map_err(|e| e.in_file("<string>"))
}

fn parse(text: &str) -> Result<WebConfigFile, Invalid> {
    use serde_saphyr::MessageFormatter;
    if text.trim().is_empty() {
        return Ok(WebConfigFile::default());
    }
    let mut path = String::new();
    let res = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, Option<WebConfigFile>>(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    });
    match res {
        Ok(v) => Ok(v.unwrap_or_default()),
        Err(e) => {
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(e.without_snippet())
                .into_owned();
            // serde_path_to_error says "." for the document itself.
            let path = if path == "." { String::new() } else { path };
            Err(Invalid {
                path,
                line: e.location().map(|l| l.line()).filter(|l| *l > 0),
                message,
            })
        }
    }
}

/// A validated web config, ready to serve with.
pub struct WebConfig {
    /// The TLS server config; `None` serves plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Offer HTTP/2 over TLS.
    http2: bool,
    /// Headers for every response.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// User name to bcrypt hash.
    users: BTreeMap<String, Redacted>,
    /// The request rate limiter, if any.
    limiter: Option<RateLimiter>,
    /// A summary for logs.
    summary: String,
    /// Things that work but should not be so (a slow bcrypt cost), logged on (re)load.
    warnings: Vec<String>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// No TLS, no auth, no headers: what runs without `--web.config.file`.
    pub fn plain() -> WebConfig {
        WebConfig {
            tls: None,
            http2: false,
            headers: Vec::new(),
            users: BTreeMap::new(),
            limiter: None,
            summary: "TLS off, basic auth off".to_string(),
            warnings: Vec::new(),
        }
    }

    /// Reads and validates `path`; relative paths inside are taken from its directory.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let file = path.display().to_string();
        let text =
            crate::fsutil::read_to_string(path, crate::fsutil::CONFIG_FILE_LIMIT).map_err(|e| {
                WebConfigError {
                    file: file.clone(),
                    path: String::new(),
                    line: None,
                    message: format!("cannot read web config file: {}", io_reason(&e)),
                }
            })?;
        let base_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        parse(&text)
            .and_then(|raw| WebConfig::build(raw, base_dir))
            .map_err(|e| e.in_file(&file))
    }

    /// Validates a parsed file; certificate files are read relative to `base_dir`.
    pub(crate) fn build(raw: WebConfigFile, base_dir: &Path) -> Result<WebConfig, Invalid> {
        let http = raw.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let tls = match raw.tls_server_config {
            Some(t) => tls::server_config(t, base_dir, http2)?,
            None => None,
        };
        let headers = headers(http.headers.unwrap_or_default())?;
        let users = raw.basic_auth_users.unwrap_or_default();
        let mut warnings = Vec::new();
        for (user, hash) in &users {
            let path = format!("basic_auth_users.{user}");
            // The parser's error can quote the value, which is not for logs.
            let Ok(parts) = hash.0.parse::<bcrypt::HashParts>() else {
                return Err(Invalid::at(
                    path,
                    "not a bcrypt hash; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'",
                ));
            };
            let cost = parts.get_cost();
            if cost > MAX_BCRYPT_COST {
                return Err(Invalid::at(
                    path,
                    format!(
                        "bcrypt cost {cost} is above the limit of {MAX_BCRYPT_COST}: every login \
                         that is not cached, and every wrong password, would take seconds of CPU or more \
                         (each step of cost doubles it); make the hash with a cost of 10 to \
                         {WARN_BCRYPT_COST}: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
                    ),
                ));
            }
            if cost > WARN_BCRYPT_COST {
                warnings.push(format!(
                    "web config {path}: bcrypt cost {cost} is above {WARN_BCRYPT_COST}; a login \
                     that is not cached may outlast a scrape timeout, and wrong passwords cost \
                     that much CPU each"
                ));
            }
        }
        let limiter = match raw.rate_limit {
            Some(RateLimitConfig {
                interval: Some(i),
                burst,
            }) if !i.is_zero() => Some(RateLimiter::new(i, burst.unwrap_or(0))),
            _ => None,
        };
        let summary = format!(
            "TLS {}, basic auth {}{}",
            if tls.is_some() {
                if http2 {
                    "on (HTTP/2 offered)"
                } else {
                    "on (HTTP/1.1 only)"
                }
            } else {
                "off"
            },
            if users.is_empty() {
                "off".to_string()
            } else {
                format!("on ({} users)", users.len())
            },
            match &limiter {
                Some(l) => format!(
                    ", rate limit 1 per {:?} burst {} per client",
                    l.interval, l.burst
                ),
                None => String::new(),
            }
        );
        Ok(WebConfig {
            tls,
            http2,
            headers,
            users,
            limiter,
            summary,
            warnings,
        })
    }

    /// Whether connections are served over TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// One line for logs: TLS, auth, rate limit.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// What works but should be changed (e.g. a bcrypt cost above 12).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// A short, platform-independent reason for an I/O failure (no OS error codes, so error
/// fixtures stay stable).
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => "no such file".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::InvalidData => "not valid UTF-8".to_string(),
        ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => e.to_string(),
    }
}

fn headers(h: Headers) -> Result<Vec<(HeaderName, HeaderValue)>, Invalid> {
    let fields: [(&'static str, Option<String>, &[&str]); 5] = [
        ("Content-Security-Policy", h.content_security_policy, &[]),
        (
            "X-Frame-Options",
            h.x_frame_options,
            &["deny", "sameorigin"],
        ),
        (
            "X-Content-Type-Options",
            h.x_content_type_options,
            &["nosniff"],
        ),
        ("X-XSS-Protection", h.x_xss_protection, &[]),
        (
            "Strict-Transport-Security",
            h.strict_transport_security,
            &[],
        ),
    ];
    let mut out = Vec::new();
    for (name, value, allowed) in fields {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let path = format!("http_server_config.headers.{name}");
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(Invalid::at(
                path,
                format!(
                    "{value:?} is not allowed; expected one of: {}",
                    allowed.join(", ")
                ),
            ));
        }
        let v = HeaderValue::from_str(&value)
            .map_err(|_| Invalid::at(&path, format!("{value:?} is not a valid header value")))?;
        out.push((HeaderName::from_static(lower(name)), v));
    }
    Ok(out)
}

/// `HeaderName::from_static` wants lower case.
fn lower(name: &'static str) -> &'static str {
    match name {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

/// Most client addresses a [`RateLimiter`] remembers; beyond it, addresses whose bucket is
/// full again are forgotten first, then the longest quiet one.
const MAX_CLIENTS: usize = 4096;

/// The key a client is limited by: its IPv4 address, or the /64 prefix of its IPv6 address (one
/// host usually owns a whole /64, so limiting single IPv6 addresses would limit nothing).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// One client's bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per client address: `burst` tokens, one more every `interval` (Go's
/// `rate.NewLimiter(rate.Every(interval), burst)`, one per client), in a map of bounded size.
pub(crate) struct RateLimiter {
    interval: Duration,
    burst: u32,
    max_clients: usize,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(interval: Duration, burst: u32) -> RateLimiter {
        RateLimiter::with_capacity(interval, burst, MAX_CLIENTS)
    }

    fn with_capacity(interval: Duration, burst: u32, max_clients: usize) -> RateLimiter {
        RateLimiter {
            interval,
            burst,
            max_clients: max_clients.max(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The tokens of a bucket at `now`.
    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let refill = if self.interval.is_zero() {
            f64::INFINITY
        } else {
            now.saturating_duration_since(b.last).as_secs_f64() / self.interval.as_secs_f64()
        };
        (b.tokens + refill).min(f64::from(self.burst))
    }

    /// Runs `f` on the client's bucket (refilled to `now`), making room for a new client first.
    fn with_bucket<T>(&self, client: IpAddr, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let key = client_key(client);
        let mut map = match self.clients.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !map.contains_key(&key) && map.len() >= self.max_clients {
            let full = f64::from(self.burst);
            map.retain(|_, b| self.refilled(*b, now) < full);
            if map.len() >= self.max_clients {
                if let Some(oldest) = map.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: f64::from(self.burst),
            last: now,
        });
        b.tokens = self.refilled(*b, now);
        b.last = now;
        f(b)
    }

    /// Takes a token of `client`'s if there is one.
    pub(crate) fn allow(&self, client: IpAddr, now: Instant) -> bool {
        self.with_bucket(client, now, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                true
            } else {
                false
            }
        })
    }

    /// Whether `client` has a token, without taking it.
    #[cfg(test)]
    fn has_token(&self, client: IpAddr, now: Instant) -> bool {
        self.with_bucket(client, now, |b| b.tokens >= 1.0)
    }

    /// Gives `client` back a token taken by [`RateLimiter::allow`].
    pub(crate) fn refund(&self, client: IpAddr, now: Instant) {
        let full = f64::from(self.burst);
        self.with_bucket(client, now, |b| b.tokens = (b.tokens + 1.0).min(full));
    }

    /// Clients remembered.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.clients.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Default `--web.max-connections` (Prometheus' own default).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default `--web.read-header-timeout`.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--web.idle-timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `--web.shutdown-grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What the `--web.*` flags ask of the web server beyond its address.
#[derive(Clone, Debug)]
pub struct WebOptions {
    /// `--web.config.file`.
    pub config_file: Option<PathBuf>,
    /// `--web.disable-reload`: `/-/reload` answers 403.
    pub disable_reload: bool,
    /// `--web.disable-probe`: `/probe` answers 403.
    pub disable_probe: bool,
    /// `--web.max-connections`: most connections open at once (never more than half the
    /// open-files limit).
    pub max_connections: usize,
    /// `--web.read-header-timeout`: time a client has to send a request's headers.
    pub read_header_timeout: Duration,
    /// `--web.idle-timeout`: a connection with no traffic and no request in flight for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// `--web.shutdown-grace`: time requests in flight get on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            config_file: None,
            disable_reload: false,
            disable_probe: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// The web config in force, replaced whole on reload, and the auth cache that outlives it.
pub struct WebSecurity {
    options: WebOptions,
    current: RwLock<Arc<WebConfig>>,
    cache: AuthCache,
    /// Whether the last load of the file succeeded (true without a file).
    last_reload_ok: AtomicBool,
    /// Where that is exported, once a daemon registered it.
    metrics: Mutex<Option<crate::metrics::WebConfigMetrics>>,
}

impl fmt::Debug for WebSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSecurity")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl WebSecurity {
    /// Loads `--web.config.file` (if any).
    pub fn new(options: WebOptions) -> Result<Arc<WebSecurity>, WebConfigError> {
        let config = match &options.config_file {
            Some(p) => WebConfig::load(p)?,
            None => WebConfig::plain(),
        };
        for w in &config.warnings {
            warn!("{w}");
        }
        Ok(Arc::new(WebSecurity {
            options,
            current: RwLock::new(Arc::new(config)),
            cache: AuthCache::default(),
            last_reload_ok: AtomicBool::new(true),
            metrics: Mutex::new(None),
        }))
    }

    /// No web config file and no restrictions.
    pub fn open() -> Arc<WebSecurity> {
        Arc::new(WebSecurity {
            options: WebOptions::default(),
            current: RwLock::new(Arc::new(WebConfig::plain())),
            cache: AuthCache::default(),
            last_reload_ok: AtomicBool::new(true),
            metrics: Mutex::new(None),
        })
    }

    /// The config in force.
    pub fn current(&self) -> Arc<WebConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The flags.
    pub fn options(&self) -> &WebOptions {
        &self.options
    }

    /// Exports `inferprobe_web_config_last_reload_successful` in `registry` (the daemon's).
    pub fn register_metrics(
        &self,
        registry: &prometheus::Registry,
    ) -> Result<(), crate::metrics::MetricsError> {
        let m = crate::metrics::WebConfigMetrics::register(
            registry,
            self.last_reload_ok.load(Ordering::SeqCst),
        )?;
        if let Ok(mut slot) = self.metrics.lock() {
            *slot = Some(m);
        }
        Ok(())
    }

    fn record_reload(&self, ok: bool) {
        self.last_reload_ok.store(ok, Ordering::SeqCst);
        if let Ok(slot) = self.metrics.lock() {
            if let Some(m) = slot.as_ref() {
                m.reloaded(ok);
            }
        }
    }

    /// Re-reads the web config file; on any error the running config is kept, and the error is
    /// logged and returned. Without a file this does nothing.
    pub fn reload(&self) -> Result<(), WebConfigError> {
        let Some(path) = &self.options.config_file else {
            return Ok(());
        };
        let res = WebConfig::load(path).and_then(|new| {
            if new.tls_enabled() != self.current().tls_enabled() {
                return Err(WebConfigError {
                    file: path.display().to_string(),
                    path: "tls_server_config".to_string(),
                    line: None,
                    message: "switching between plain HTTP and TLS needs a restart".to_string(),
                });
            }
            Ok(new)
        });
        match res {
            Ok(new) => {
                info!(file = %path.display(), web = new.summary(), "Web config reloaded.");
                for w in &new.warnings {
                    warn!("{w}");
                }
                self.record_reload(true);
                let new = Arc::new(new);
                match self.current.write() {
                    Ok(mut c) => *c = new,
                    Err(poisoned) => *poisoned.into_inner() = new,
                }
                Ok(())
            }
            Err(e) => {
                error!(error = %e, "Web config reload failed; the running web config is kept.");
                self.record_reload(false);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_documents_are_plain() {
        for text in ["", "---\n", "{}"] {
            let c = WebConfig::build(parse(text).unwrap(), Path::new(".")).unwrap();
            assert!(!c.tls_enabled());
            assert!(c.users.is_empty() && c.headers.is_empty() && c.limiter.is_none());
            assert_eq!(c.summary(), "TLS off, basic auth off");
        }
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let e = parse("tls_server_config:\n  cert_file: a\n  keyfile: b\n").unwrap_err();
        assert_eq!(e.path, "tls_server_config.keyfile");
        assert_eq!(e.line, Some(3));
        assert!(
            e.message.starts_with("unknown field `keyfile`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn header_values_are_checked() {
        let raw = parse("http_server_config:\n  headers:\n    X-Frame-Options: allow\n").unwrap();
        let e = WebConfig::build(raw, Path::new(".")).unwrap_err();
        assert_eq!(e.path, "http_server_config.headers.X-Frame-Options");
        assert_eq!(
            e.message,
            "\"allow\" is not allowed; expected one of: deny, sameorigin"
        );
        let raw = parse("http_server_config:\n  headers:\n    X-Frame-Options: ''\n    X-Content-Type-Options: nosniff\n")
            .unwrap();
        let c = WebConfig::build(raw, Path::new(".")).unwrap();
        assert_eq!(c.headers.len(), 1);
        assert_eq!(c.headers[0].0.as_str(), "x-content-type-options");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rate_limiter_refills_one_token_per_interval() {
        let l = RateLimiter::new(Duration::from_secs(1), 2);
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        assert!(l.allow(a, t0));
        assert!(l.allow(a, t0));
        assert!(!l.allow(a, t0));
        assert!(!l.allow(a, t0 + Duration::from_millis(500)));
        assert!(l.allow(a, t0 + Duration::from_millis(1000)));
        assert!(!l.has_token(a, t0 + Duration::from_millis(1000)));
        assert!(!l.allow(a, t0 + Duration::from_millis(1000)));
        let zero = RateLimiter::new(Duration::from_secs(1), 0);
        assert!(!zero.allow(a, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let l = RateLimiter::new(Duration::from_secs(60), 1);
        let t0 = Instant::now();
        assert!(l.allow(ip("192.0.2.1"), t0));
        assert!(!l.allow(ip("192.0.2.1"), t0));
        // Another address is not locked out by the first one's flood.
        assert!(l.allow(ip("192.0.2.2"), t0));
        // IPv4-mapped IPv6 is the IPv4 client; addresses in one IPv6 /64 share a bucket.
        assert!(!l.allow(ip("::ffff:192.0.2.1"), t0));
        assert!(l.allow(ip("2001:db8:1:2::1"), t0));
        assert!(!l.allow(ip("2001:db8:1:2:ffff::9"), t0));
        assert!(l.allow(ip("2001:db8:1:3::1"), t0));
    }

    #[test]
    fn the_client_map_is_bounded() {
        let l = RateLimiter::with_capacity(Duration::from_secs(60), 1, 3);
        let t0 = Instant::now();
        for i in 0..100u8 {
            let now = t0 + Duration::from_millis(u64::from(i));
            assert!(l.allow(IpAddr::from([10, 0, 0, i]), now));
            assert!(l.clients() <= 3);
        }
        // The most recent clients are remembered (their buckets are still empty).
        assert!(!l.allow(ip("10.0.0.99"), t0 + Duration::from_millis(100)));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let raw =
            parse("tls_server_config:\n  key: SECRETKEY\nbasic_auth_users:\n  u: HASHVALUE\n")
                .unwrap();
        let s = format!("{raw:?}");
        assert!(!s.contains("SECRETKEY") && !s.contains("HASHVALUE"), "{s}");
    }
}
