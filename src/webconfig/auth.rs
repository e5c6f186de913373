//! The request guard: rate limit, basic auth, disabled endpoints and response headers, in front
//! of every endpoint.
//!
//! Both limits are per client address, so a flood from one address cannot lock out another:
//! the configured `rate_limit`, and a fixed allowance of failed logins (bcrypt is slow on
//! purpose, so every wrong password costs CPU). bcrypt runs at most [`BCRYPT_CONCURRENCY`] at
//! a time, and a login that cannot start one within [`BCRYPT_WAIT`] is answered 503.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tracing::debug;

use super::{WebConfig, WebSecurity};

/// The `WWW-Authenticate` challenge of a 401.
pub const CHALLENGE: &str = "Basic realm=\"inferprobe\"";

/// Most remembered successful logins; the set is emptied when it fills up.
const CACHE_SIZE: usize = 100;

/// bcrypt verifications running at once.
pub const BCRYPT_CONCURRENCY: usize = 2;

/// Longest wait for a bcrypt slot before the login is answered 503.
pub const BCRYPT_WAIT: Duration = Duration::from_secs(5);

/// Failed logins a client address may make at once...
pub const FAILED_LOGIN_BURST: u32 = 10;

/// ...and then one more per this interval; beyond that its logins are answered 429 without
/// running bcrypt.
pub const FAILED_LOGIN_INTERVAL: Duration = Duration::from_secs(1);

/// Successful bcrypt verifications, remembered by a SHA-256 of (user, hash, password), so the
/// deliberately slow bcrypt runs once per credential rather than once per scrape. No password is
/// kept. The hash is part of the key, so a changed hash on reload needs a new verification.
/// It also holds the limits on bcrypt work, which outlive reloads.
pub struct AuthCache {
    ok: Mutex<HashSet<[u8; 32]>>,
    /// A few bcrypts at a time: a burst of bad logins must not take every core.
    bcrypt: tokio::sync::Semaphore,
    /// Failed logins per client address.
    failures: super::RateLimiter,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache").finish_non_exhaustive()
    }
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            ok: Mutex::new(HashSet::new()),
            bcrypt: tokio::sync::Semaphore::new(BCRYPT_CONCURRENCY),
            failures: super::RateLimiter::new(FAILED_LOGIN_INTERVAL, FAILED_LOGIN_BURST),
        }
    }
}

impl AuthCache {
    fn key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        for part in [user.as_bytes(), hash.as_bytes(), password] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        self.ok.lock().map(|s| s.contains(key)).unwrap_or(false)
    }

    fn insert(&self, key: [u8; 32]) {
        if let Ok(mut s) = self.ok.lock() {
            if s.len() >= CACHE_SIZE {
                s.clear();
            }
            s.insert(key);
        }
    }

    /// Number of remembered logins.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ok.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether nothing is remembered.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// User and password of an `Authorization: Basic ...` header.
fn basic_credentials(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let v = value.to_str().ok()?;
    let (scheme, encoded) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Compares without stopping at the first difference (the length still shows).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the guard makes of a request's credentials.
#[derive(Debug, PartialEq, Eq)]
enum Login {
    /// A configured user with the right password.
    Ok,
    /// No, wrong or unknown credentials.
    Denied,
    /// The client used up its failed logins: 429 without a bcrypt.
    Throttled,
    /// No bcrypt slot freed up in time: 503.
    Busy,
}

/// Whether the request's credentials match a configured user. A remembered login costs no
/// bcrypt; otherwise the client must have failed logins left, and a bcrypt slot must free up
/// within [`BCRYPT_WAIT`]. A failed verification uses up one of the client's failed logins.
async fn authorized(
    cache: &AuthCache,
    cfg: &WebConfig,
    client: IpAddr,
    header: Option<&HeaderValue>,
) -> Login {
    let Some((user, password)) = header.and_then(basic_credentials) else {
        return Login::Denied;
    };
    // Every name is compared, so the time taken does not tell which user exists.
    let mut found = None;
    for (name, hash) in &cfg.users {
        if ct_eq(name.as_bytes(), user.as_bytes()) {
            found = Some(hash.0.clone());
        }
    }
    let known = found.is_some();
    // An unknown user still costs one bcrypt, against a configured hash.
    let Some(hash) = found.or_else(|| cfg.users.values().next().map(|h| h.0.clone())) else {
        return Login::Denied;
    };
    let key = AuthCache::key(&user, &hash, &password);
    if known && cache.contains(&key) {
        return Login::Ok;
    }
    // A failed login is charged before bcrypt runs (and refunded on success), so a burst of
    // concurrent wrong passwords cannot all pass the check before the first one fails.
    if !cache.failures.allow(client, Instant::now()) {
        return Login::Throttled;
    }
    let Ok(Ok(_permit)) = tokio::time::timeout(BCRYPT_WAIT, cache.bcrypt.acquire()).await else {
        cache.failures.refund(client, Instant::now());
        return Login::Busy;
    };
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    if ok && known {
        cache.insert(key);
        cache.failures.refund(client, Instant::now());
        Login::Ok
    } else {
        Login::Denied
    }
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The middleware in front of every endpoint.
pub(crate) async fn guard(
    State(sec): State<Arc<WebSecurity>>,
    req: Request,
    next: Next,
) -> Response {
    let cfg = sec.current();
    let mut res = guarded(&sec, &cfg, req, next).await;
    let h = res.headers_mut();
    for (name, value) in &cfg.headers {
        h.insert(name.clone(), value.clone());
    }
    res
}

async fn guarded(sec: &WebSecurity, cfg: &WebConfig, req: Request, next: Next) -> Response {
    // The server puts the peer address on every request; without it (a router driven
    // directly), all clients share one bucket.
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if let Some(l) = &cfg.limiter {
        if !l.allow(client, Instant::now()) {
            return plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        }
    }
    if !cfg.users.is_empty() {
        match authorized(
            &sec.cache,
            cfg,
            client,
            req.headers().get(header::AUTHORIZATION),
        )
        .await
        {
            Login::Ok => {}
            Login::Denied => {
                debug!(path = %req.uri().path(), "Unauthorized request.");
                let mut res = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n");
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE),
                );
                return res;
            }
            Login::Throttled => {
                debug!(client = %client, "Too many failed logins.");
                let mut res = plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too Many Requests: too many failed logins from this address\n",
                );
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return res;
            }
            Login::Busy => {
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable: too many logins being checked\n",
                );
            }
        }
    }
    let path = req.uri().path();
    if sec.options.disable_reload && path == "/-/reload" {
        return plain(
            StatusCode::FORBIDDEN,
            "Forbidden: /-/reload is disabled by --web.disable-reload.\n",
        );
    }
    if sec.options.disable_probe && path == "/probe" {
        return plain(
            StatusCode::FORBIDDEN,
            "Forbidden: /probe is disabled by --web.disable-probe.\n",
        );
    }
    let reload =
        path == "/-/reload" && (req.method() == Method::POST || req.method() == Method::PUT);
    let res = next.run(req).await;
    if !reload {
        return res;
    }
    // The daemon config has been reloaded; the web config follows it.
    match sec.reload() {
        Ok(()) => res,
        Err(e) => {
            let (mut parts, body) = res.into_parts();
            let before = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let mut text = String::from_utf8_lossy(&before).into_owned();
            text.push_str(&format!(
                "Web config reload failed; the running web config is kept.\n{e}\n"
            ));
            parts.status = StatusCode::INTERNAL_SERVER_ERROR;
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> HeaderValue {
        let enc = base64::engine::general_purpose::STANDARD.encode(s);
        HeaderValue::from_str(&format!("Basic {enc}")).unwrap()
    }

    #[test]
    fn credentials_are_split_at_the_first_colon() {
        assert_eq!(
            basic_credentials(&basic("alice:pa:ss")),
            Some(("alice".to_string(), b"pa:ss".to_vec()))
        );
        assert_eq!(
            basic_credentials(&basic("alice:")),
            Some(("alice".to_string(), Vec::new()))
        );
        assert_eq!(basic_credentials(&basic("nocolon")), None);
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Bearer abc")),
            None
        );
        assert_eq!(
            basic_credentials(&HeaderValue::from_static("Basic !!!")),
            None
        );
        let lower = HeaderValue::from_str(&format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:p")
        ))
        .unwrap();
        assert_eq!(
            basic_credentials(&lower),
            Some(("u".to_string(), b"p".to_vec()))
        );
    }

    #[test]
    fn cache_keys_separate_fields() {
        assert_ne!(
            AuthCache::key("ab", "h", b"c"),
            AuthCache::key("a", "h", b"bc")
        );
        assert_eq!(
            AuthCache::key("a", "h", b"p"),
            AuthCache::key("a", "h", b"p")
        );
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }

    #[tokio::test]
    async fn verified_logins_are_cached_and_wrong_ones_are_not() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let yaml = format!("basic_auth_users:\n  alice: '{hash}'\n");
        let cfg = WebConfig::build(
            super::super::parse(&yaml).unwrap(),
            std::path::Path::new("."),
        )
        .unwrap();
        let cache = AuthCache::default();
        let me = IpAddr::from([192, 0, 2, 1]);
        let check = |h: Option<HeaderValue>| {
            let cache = &cache;
            let cfg = &cfg;
            async move { authorized(cache, cfg, me, h.as_ref()).await }
        };
        assert_eq!(check(None).await, Login::Denied);
        assert_eq!(check(Some(basic("alice:wrong"))).await, Login::Denied);
        assert_eq!(check(Some(basic("bob:s3cret"))).await, Login::Denied);
        assert!(cache.is_empty());
        assert_eq!(check(Some(basic("alice:s3cret"))).await, Login::Ok);
        assert_eq!(cache.len(), 1);
        assert_eq!(check(Some(basic("alice:s3cret"))).await, Login::Ok);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn failed_logins_are_limited_per_address() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let yaml = format!("basic_auth_users:\n  alice: '{hash}'\n");
        let cfg = WebConfig::build(
            super::super::parse(&yaml).unwrap(),
            std::path::Path::new("."),
        )
        .unwrap();
        let cache = AuthCache::default();
        let attacker = IpAddr::from([192, 0, 2, 66]);
        let scraper = IpAddr::from([192, 0, 2, 1]);
        // Wrong passwords use up the address's allowance of failed logins.
        let mut denied = 0;
        let mut throttled = 0;
        for _ in 0..(FAILED_LOGIN_BURST + 5) {
            match authorized(&cache, &cfg, attacker, Some(&basic("alice:nope"))).await {
                Login::Denied => denied += 1,
                Login::Throttled => throttled += 1,
                other => panic!("{other:?}"),
            }
        }
        // The burst, perhaps one more refilled while bcrypt ran.
        assert!(
            (FAILED_LOGIN_BURST..=FAILED_LOGIN_BURST + 1).contains(&denied),
            "{denied}"
        );
        assert!(throttled >= 4, "{throttled}");
        // The right password from the throttled address waits too (no bcrypt for it)...
        assert_eq!(
            authorized(&cache, &cfg, attacker, Some(&basic("alice:s3cret"))).await,
            Login::Throttled
        );
        // ...but another address logs in.
        assert_eq!(
            authorized(&cache, &cfg, scraper, Some(&basic("alice:s3cret"))).await,
            Login::Ok
        );
        // Once remembered, the login works from anywhere without bcrypt.
        assert_eq!(
            authorized(&cache, &cfg, attacker, Some(&basic("alice:s3cret"))).await,
            Login::Ok
        );
    }
}
