//! The request guard: rate limit, basic auth, disabled endpoints and response headers, in front
//! of every endpoint.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
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

/// Successful bcrypt verifications, remembered by a SHA-256 of (user, hash, password), so the
/// deliberately slow bcrypt runs once per credential rather than once per scrape. No password is
/// kept. The hash is part of the key, so a changed hash on reload needs a new verification.
#[derive(Debug)]
pub struct AuthCache {
    ok: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time: a burst of bad logins must not take every core.
    bcrypt: tokio::sync::Semaphore,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            ok: Mutex::new(HashSet::new()),
            bcrypt: tokio::sync::Semaphore::new(1),
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

/// Whether the request's credentials match a configured user.
async fn authorized(cache: &AuthCache, cfg: &WebConfig, header: Option<&HeaderValue>) -> bool {
    let Some((user, password)) = header.and_then(basic_credentials) else {
        return false;
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
        return false;
    };
    let key = AuthCache::key(&user, &hash, &password);
    if known && cache.contains(&key) {
        return true;
    }
    let Ok(_permit) = cache.bcrypt.acquire().await else {
        return false;
    };
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    if ok && known {
        cache.insert(key);
    }
    ok && known
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
    if let Some(l) = &cfg.limiter {
        if !l.allow(Instant::now()) {
            return plain(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n");
        }
    }
    if !cfg.users.is_empty()
        && !authorized(&sec.cache, cfg, req.headers().get(header::AUTHORIZATION)).await
    {
        debug!(path = %req.uri().path(), "Unauthorized request.");
        let mut res = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
        return res;
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
        assert!(!authorized(&cache, &cfg, None).await);
        assert!(!authorized(&cache, &cfg, Some(&basic("alice:wrong"))).await);
        assert!(!authorized(&cache, &cfg, Some(&basic("bob:s3cret"))).await);
        assert!(cache.is_empty());
        assert!(authorized(&cache, &cfg, Some(&basic("alice:s3cret"))).await);
        assert_eq!(cache.len(), 1);
        assert!(authorized(&cache, &cfg, Some(&basic("alice:s3cret"))).await);
        assert_eq!(cache.len(), 1);
    }
}
