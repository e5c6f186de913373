//! AWS request signing (Signature Version 4) and credentials, for Amazon Bedrock.
//!
//! Signing is a pure function of the request, the credentials, the region, the service and the
//! time ([`sign`]); it uses the `aws-sigv4` crate with its default settings, which are what the
//! AWS SDKs use for services other than S3: the canonical path is the sent path encoded once
//! more (a model id's `%3A` is signed as `%253A`), the session token is signed, and no
//! `x-amz-content-sha256` header is added (the payload hash is still part of the signature).
//!
//! Credentials are read the way the AWS SDKs' default chain starts, without the SDK's
//! configuration crate ([`load_credentials`]):
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`),
//!    then the shared config file (`AWS_CONFIG_FILE`, else `~/.aws/config`), profile
//!    `AWS_PROFILE` or `default`, keys `aws_access_key_id`, `aws_secret_access_key`,
//!    `aws_session_token`.
//!
//! SSO, web identity, process credentials and instance metadata are not read. A Bedrock API key
//! (`AWS_BEARER_TOKEN_BEDROCK`, as the AWS SDKs read it) is sent as `Authorization: Bearer`
//! instead of a signature ([`bedrock_api_key`]).
//!
//! Every credential value read here is registered with the process-wide redactor before it is
//! returned, so it can appear in no output; errors name the variable, file or profile that is
//! missing, never a value.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use reqwest::header::{HeaderName, HeaderValue};

use crate::fsutil;
use crate::redact::{self, Redactor};

/// The environment variable the AWS SDKs read a Bedrock API key from.
pub const BEARER_TOKEN_ENV: &str = "AWS_BEARER_TOKEN_BEDROCK";

/// Largest shared credentials or config file read.
const AWS_FILE_LIMIT: u64 = fsutil::SECRET_FILE_LIMIT;

/// AWS credentials for signing. `Debug` shows the key id's source only, never a value.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA…`, `ASIA…`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
    /// Where they came from, for logs: `environment` or `profile NAME in FILE`.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("source", &self.source)
            .field("session_token", &self.session_token.is_some())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Every value to keep out of output.
    pub fn secrets(&self) -> Vec<&str> {
        let mut s = vec![self.access_key_id.as_str(), self.secret_access_key.as_str()];
        if let Some(t) = &self.session_token {
            s.push(t);
        }
        s
    }
}

/// Why no credentials could be read. Names what is missing, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    /// Only one of the two key variables is set.
    #[error("{set} is set but {missing} is not")]
    IncompleteEnvironment {
        /// The variable that is set.
        set: &'static str,
        /// The one that is missing.
        missing: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read AWS {what} file {path}: {reason}")]
    File {
        /// `credentials` or `config`.
        what: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// A profile has one key without the other.
    #[error("profile {profile} in {path} has {set} but no {missing}")]
    IncompleteProfile {
        /// The profile name.
        profile: String,
        /// The file.
        path: String,
        /// The key present.
        set: &'static str,
        /// The key missing.
        missing: &'static str,
    },
    /// Nothing found anywhere.
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile \
         {profile} to {credentials_file} (or {config_file}), or set {BEARER_TOKEN_ENV} for a \
         Bedrock API key"
    )]
    NotFound {
        /// The profile looked for.
        profile: String,
        /// The credentials file looked in.
        credentials_file: String,
        /// The config file looked in.
        config_file: String,
    },
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The URL is not an absolute http(s) URL with a host.
    #[error("cannot sign request to {url}: {reason}")]
    Url {
        /// The URL (without userinfo, query or fragment).
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A header value is not visible ASCII text.
    #[error("cannot sign header {0}: its value is not text")]
    Header(String),
    /// The clock is before 1970.
    #[error("cannot sign: the system clock is before 1970")]
    Clock,
    /// The region or service is empty.
    #[error("cannot sign: empty {0}")]
    Empty(&'static str),
    /// The signer refused (credentials or parameters).
    #[error("cannot sign request: {0}")]
    Signer(String),
}

/// The request to sign: exactly what will be sent. Every header given here is signed (except
/// `authorization`, `user-agent`, `transfer-encoding` and `x-amzn-trace-id`, which proxies may
/// change), so headers added after signing must not be among them; `host` is taken from the URL
/// when absent.
#[derive(Clone, Copy, Debug)]
pub struct SignInput<'a> {
    /// `POST`.
    pub method: &'a str,
    /// The full URL as sent, path percent-encoded (see the Bedrock dialect's `path`).
    pub url: &'a str,
    /// Headers sent with the request that should be covered by the signature (e.g.
    /// `content-type`).
    pub headers: &'a [(&'a str, &'a str)],
    /// The request body.
    pub body: &'a [u8],
}

/// Signs a request with SigV4 and returns the headers to add: `authorization`, `x-amz-date`
/// and, for temporary credentials, `x-amz-security-token`. The `authorization` and token values
/// are marked sensitive.
pub fn sign(
    req: &SignInput<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
    if region.trim().is_empty() {
        return Err(SignError::Empty("region"));
    }
    if service.trim().is_empty() {
        return Err(SignError::Empty("service"));
    }
    now.duration_since(UNIX_EPOCH)
        .map_err(|_| SignError::Clock)?;
    check_url(req.url)?;
    for (name, value) in req.headers {
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(SignError::Header((*name).to_string()));
        }
    }
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "inferprobe",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError::Signer(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        req.method,
        req.url,
        req.headers.iter().copied(),
        SignableBody::Bytes(req.body),
    )
    .map_err(|e| SignError::Signer(e.to_string()))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| SignError::Signer(e.to_string()))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    let mut out = Vec::with_capacity(headers.len());
    for h in headers {
        let name = HeaderName::from_bytes(h.name().as_bytes())
            .map_err(|_| SignError::Header(h.name().into()))?;
        let mut value =
            HeaderValue::from_str(h.value()).map_err(|_| SignError::Header(h.name().into()))?;
        value.set_sensitive(h.sensitive() || name == reqwest::header::AUTHORIZATION);
        out.push((name, value));
    }
    Ok(out)
}

/// Rejects what the signer cannot handle (it would panic on a URL without a host).
fn check_url(url: &str) -> Result<(), SignError> {
    let bad = |shown: String, reason| SignError::Url { url: shown, reason };
    let parsed =
        reqwest::Url::parse(url).map_err(|_| bad("(unparsable URL)".into(), "not a URL"))?;
    let shown = format!(
        "{}://{}{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or(""),
        parsed.path()
    );
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(shown, "not an http(s) URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(shown, "no host"));
    }
    Ok(())
}

/// Why a Bedrock request could not be authorized.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// No region for the signature.
    #[error(
        "no AWS region to sign requests to {host}: set AWS_REGION, or use a \
         bedrock-runtime.REGION.amazonaws.com URL"
    )]
    NoRegion {
        /// The URL's host.
        host: String,
    },
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// The headers that authorize one Bedrock request, choosing as the AWS SDKs do:
/// 1. `api_key` (the target's configured key) as a Bedrock API key, `Authorization: Bearer`;
/// 2. else [`BEARER_TOKEN_ENV`] the same way;
/// 3. else a SigV4 signature with [`load_credentials`] for `region` (the target's own, if it
///    has one) or the one [`resolve_region`] finds.
///
/// Call it per request, just before sending: credentials files and session tokens change, and
/// a reloaded config's redactor learns the values again here.
pub fn authorize(
    req: &SignInput<'_>,
    api_key: Option<&str>,
    region: Option<&str>,
    service: &str,
    now: SystemTime,
) -> Result<Vec<(HeaderName, HeaderValue)>, AuthError> {
    let key = api_key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .or_else(bedrock_api_key);
    if let Some(key) = key {
        register_secrets([key.as_str()]);
        let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| SignError::Header("authorization".into()))?;
        v.set_sensitive(true);
        return Ok(vec![(reqwest::header::AUTHORIZATION, v)]);
    }
    let creds = load_credentials()?;
    let host = reqwest::Url::parse(req.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let region = resolve_region(region, &host).ok_or(AuthError::NoRegion { host })?;
    Ok(sign(req, &creds, &region, service, now)?)
}

/// Reads credentials from the environment, then the shared files (see the module doc), and
/// registers every value with the redactor.
pub fn load_credentials() -> Result<Credentials, CredentialsError> {
    let env = |k: &str| std::env::var(k).ok();
    let creds = credentials_from(&env, home_dir().as_deref())?;
    register_secrets(creds.secrets());
    Ok(creds)
}

/// The Bedrock API key from [`BEARER_TOKEN_ENV`], registered with the redactor; `None` when
/// unset or blank.
pub fn bedrock_api_key() -> Option<String> {
    let key = std::env::var(BEARER_TOKEN_ENV).ok()?.trim().to_string();
    if key.is_empty() {
        return None;
    }
    register_secrets([key.as_str()]);
    Some(key)
}

/// The region to sign for: `explicit` (the target's own setting) if any, else the region in a
/// Bedrock Runtime host name, else `AWS_REGION`, `AWS_DEFAULT_REGION`, else the profile's
/// `region` in the shared config file. The host comes before the environment because a
/// signature for another region than the endpoint's is always refused.
pub fn resolve_region(explicit: Option<&str>, host: &str) -> Option<String> {
    let env = |k: &str| std::env::var(k).ok();
    region_from(explicit, host, &env, home_dir().as_deref())
}

/// [`resolve_region`] with the environment and home directory given.
pub fn region_from(
    explicit: Option<&str>,
    host: &str,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Option<String> {
    let nonempty = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(r) = nonempty(explicit.map(str::to_string)) {
        return Some(r);
    }
    if let Some(r) = region_from_host(host) {
        return Some(r);
    }
    if let Some(r) = nonempty(env("AWS_REGION")).or_else(|| nonempty(env("AWS_DEFAULT_REGION"))) {
        return Some(r);
    }
    let profile = profile_name(env);
    let path = config_file(env, home)?;
    let text = fsutil::read_to_string(&path, AWS_FILE_LIMIT).ok()?;
    let sections = parse_ini(&text);
    nonempty(
        sections
            .get(&config_section(&profile))
            .and_then(|s| s.get("region"))
            .cloned(),
    )
}

/// The region in `bedrock-runtime.REGION.amazonaws.com` (also `-fips`, `.amazonaws.com.cn`
/// and the dual-stack `api.aws` names).
pub fn region_from_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut labels = host.split('.');
    let first = labels.next()?;
    if first != "bedrock-runtime" && first != "bedrock-runtime-fips" {
        return None;
    }
    let region = labels.next()?;
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let rest: Vec<&str> = labels.collect();
    let aws_domain = matches!(
        rest.as_slice(),
        ["amazonaws", "com"] | ["amazonaws", "com", "cn"] | ["api", "aws"]
    );
    (valid && aws_domain).then(|| region.to_string())
}

fn register_secrets<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    let current = redact::current();
    let missing: Vec<&str> = secrets
        .into_iter()
        .filter(|s| {
            let s = s.trim();
            s.len() >= redact::MIN_SECRET_LEN && current.redact(s) == s
        })
        .collect();
    if !missing.is_empty() {
        redact::extend(&Redactor::new(missing));
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn profile_name(env: &dyn Fn(&str) -> Option<String>) -> String {
    env("AWS_PROFILE")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

fn file_from(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    home: Option<&Path>,
    default: &str,
) -> Option<PathBuf> {
    match env(var).filter(|p| !p.trim().is_empty()) {
        Some(p) => Some(expand_home(&p, home)),
        None => home.map(|h| h.join(".aws").join(default)),
    }
}

fn credentials_file(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Option<PathBuf> {
    file_from(env, "AWS_SHARED_CREDENTIALS_FILE", home, "credentials")
}

fn config_file(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Option<PathBuf> {
    file_from(env, "AWS_CONFIG_FILE", home, "config")
}

fn expand_home(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(p),
    }
}

/// The section name of a profile in the config file: `default` or `profile NAME`.
fn config_section(profile: &str) -> String {
    if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    }
}

/// [`load_credentials`] with the environment and home directory given (no registration).
pub fn credentials_from(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Credentials, CredentialsError> {
    let var = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            return Ok(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: var("AWS_SESSION_TOKEN"),
                source: "environment".to_string(),
            })
        }
        (Some(_), None) => {
            return Err(CredentialsError::IncompleteEnvironment {
                set: "AWS_ACCESS_KEY_ID",
                missing: "AWS_SECRET_ACCESS_KEY",
            })
        }
        (None, Some(_)) => {
            return Err(CredentialsError::IncompleteEnvironment {
                set: "AWS_SECRET_ACCESS_KEY",
                missing: "AWS_ACCESS_KEY_ID",
            })
        }
        (None, None) => {}
    }
    let profile = profile_name(env);
    let cred_path = credentials_file(env, home);
    let conf_path = config_file(env, home);
    let files = [
        ("credentials", cred_path.clone(), profile.clone()),
        ("config", conf_path.clone(), config_section(&profile)),
    ];
    for (what, path, section) in files {
        let Some(path) = path else { continue };
        let text = match fsutil::read_to_string(&path, AWS_FILE_LIMIT) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(CredentialsError::File {
                    what,
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        let sections = parse_ini(&text);
        let Some(keys) = sections.get(&section) else {
            continue;
        };
        let get = |k: &str| keys.get(k).cloned().filter(|v| !v.is_empty());
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => {
                return Ok(Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: get("aws_session_token"),
                    source: format!("profile {profile} in {}", path.display()),
                })
            }
            (Some(_), None) => {
                return Err(CredentialsError::IncompleteProfile {
                    profile,
                    path: path.display().to_string(),
                    set: "aws_access_key_id",
                    missing: "aws_secret_access_key",
                })
            }
            (None, Some(_)) => {
                return Err(CredentialsError::IncompleteProfile {
                    profile,
                    path: path.display().to_string(),
                    set: "aws_secret_access_key",
                    missing: "aws_access_key_id",
                })
            }
            // A config profile with only a region or an SSO setup: not ours to read.
            (None, None) => {}
        }
    }
    let shown = |p: Option<PathBuf>, d: &str| p.map_or(d.to_string(), |p| p.display().to_string());
    Err(CredentialsError::NotFound {
        profile,
        credentials_file: shown(cred_path, "~/.aws/credentials"),
        config_file: shown(conf_path, "~/.aws/config"),
    })
}

/// The sections of an AWS INI file: `[name]` headers, `key = value` lines, `#` and `;`
/// comment lines. Keys are lowercased; indented lines (nested settings such as
/// `s3 =\n  max_concurrent_requests = 10`) are skipped.
fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (Some(section), Some((k, v))) = (&current, line.split_once('=')) else {
            continue;
        };
        if let Some(s) = sections.get_mut(section) {
            s.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The example credentials of AWS's SigV4 test suite.
    fn example_creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
            source: "test".into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    const SUITE_TIME: u64 = 1_440_938_160;

    fn header<'a>(h: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
        h.iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    /// AWS SigV4 test suite, `get-vanilla-with-session-token` (aws-c-auth's suite, as shipped
    /// with the AWS SDKs): GET / on example.amazonaws.com, service `service`, us-east-1.
    #[test]
    fn aws_suite_get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let got = sign(
            &SignInput {
                method: "GET",
                url: "https://example.amazonaws.com/",
                headers: &[],
                body: b"",
            },
            &example_creds(Some(token)),
            "us-east-1",
            "service",
            at(SUITE_TIME),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            header(&got, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-security-token, \
                 Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            )
        );
        assert_eq!(header(&got, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(header(&got, "x-amz-security-token"), Some(token));
        assert!(got
            .iter()
            .all(|(n, v)| n != "authorization" || v.is_sensitive()));
    }

    /// AWS SigV4 test suite, `post-vanilla`.
    #[test]
    fn aws_suite_post_vanilla() {
        let got = sign(
            &SignInput {
                method: "POST",
                url: "https://example.amazonaws.com/",
                headers: &[],
                body: b"",
            },
            &example_creds(None),
            "us-east-1",
            "service",
            at(SUITE_TIME),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            header(&got, "authorization").is_some_and(|a| a.ends_with(
                "SignedHeaders=host;x-amz-date, \
                 Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )),
            "{got:?}"
        );
        assert_eq!(header(&got, "x-amz-security-token"), None);
        assert_eq!(header(&got, "x-amz-content-sha256"), None);
    }

    /// A Bedrock ConverseStream request with a body, a `:` in the model id and a session
    /// token. The expected signature was computed apart from this crate, by following AWS's
    /// published SigV4 steps (canonical request with the path encoded twice, string to sign,
    /// HMAC-SHA256 key derivation) in a short Python script over `hashlib` and `hmac`; the
    /// canonical request's hash is `41217b4f…`. botocore 1.43.11's `SigV4Auth` (the AWS SDK for
    /// Python's signer) gives the same signature for this request and time.
    #[test]
    fn bedrock_request_matches_an_independent_computation() {
        let body = br#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#;
        let got = sign(
            &SignInput {
                method: "POST",
                url: "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
                headers: &[("content-type", "application/json")],
                body,
            },
            &example_creds(Some("FwoGZXIvYXdzEXAMPLETOKENvalue1234567890")),
            "us-west-2",
            "bedrock",
            // 2026-03-02T09:14:07Z
            at(1_772_442_847),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            header(&got, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260302/us-west-2/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, \
                 Signature=ce869054741707f0071b5ed1126915eb0898dc36f7631f450493883b545cea50"
            )
        );
        // A different body is a different signature.
        let other = sign(
            &SignInput {
                method: "POST",
                url: "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
                headers: &[("content-type", "application/json")],
                body: b"{}",
            },
            &example_creds(Some("FwoGZXIvYXdzEXAMPLETOKENvalue1234567890")),
            "us-west-2",
            "bedrock",
            at(1_772_442_847),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(
            header(&other, "authorization"),
            header(&got, "authorization")
        );
    }

    #[test]
    fn unsignable_requests_are_errors_not_panics() {
        let creds = example_creds(None);
        let try_sign = |url: &str, headers: &[(&str, &str)], region: &str, now| {
            sign(
                &SignInput {
                    method: "POST",
                    url,
                    headers,
                    body: b"",
                },
                &creds,
                region,
                "bedrock",
                now,
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        let now = at(SUITE_TIME);
        assert_eq!(
            try_sign("not a url", &[], "us-east-1", now),
            Err("cannot sign request to (unparsable URL): not a URL".into())
        );
        assert_eq!(
            try_sign("file:///etc/passwd", &[], "us-east-1", now),
            Err("cannot sign request to file:///etc/passwd: not an http(s) URL".into())
        );
        assert_eq!(
            try_sign(
                "https://h.example/",
                &[("x-a", "caf\u{e9}")],
                "us-east-1",
                now
            ),
            Err("cannot sign header x-a: its value is not text".into())
        );
        assert_eq!(
            try_sign("https://h.example/", &[], " ", now),
            Err("cannot sign: empty region".into())
        );
        assert_eq!(
            try_sign(
                "https://h.example/",
                &[],
                "us-east-1",
                UNIX_EPOCH - Duration::from_secs(1)
            ),
            Err("cannot sign: the system clock is before 1970".into())
        );
        assert_eq!(
            try_sign("http://127.0.0.1:9/x", &[], "us-east-1", now),
            Ok(())
        );
    }

    #[test]
    fn a_configured_key_is_a_bearer_token() {
        let req = SignInput {
            method: "POST",
            url: "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse-stream",
            headers: &[],
            body: b"{}",
        };
        let got = authorize(
            &req,
            Some(" bedrock-api-key-0123 "),
            None,
            "bedrock",
            at(SUITE_TIME),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            header(&got, "authorization"),
            Some("Bearer bedrock-api-key-0123")
        );
        assert!(got.iter().all(|(_, v)| v.is_sensitive()));
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn credentials_debug_shows_no_values() {
        let c = example_creds(Some("tok-secret-value"));
        let shown = format!("{c:?}");
        for s in c.secrets() {
            assert!(!shown.contains(s), "{shown}");
        }
        assert!(shown.contains("source"));
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn environment_credentials_come_first() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE01"),
            ("AWS_SECRET_ACCESS_KEY", "env/secret/EXAMPLEKEY"),
            ("AWS_SESSION_TOKEN", "envtoken123456"),
        ]);
        let c = credentials_from(&env, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.access_key_id, "AKIAENVEXAMPLE01");
        assert_eq!(c.secret_access_key, "env/secret/EXAMPLEKEY");
        assert_eq!(c.session_token.as_deref(), Some("envtoken123456"));
        assert_eq!(c.source, "environment");
        let env = env_of(&[("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE01")]);
        assert_eq!(
            credentials_from(&env, None).map_err(|e| e.to_string()),
            Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())
        );
    }

    #[test]
    fn shared_files_and_profiles() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let home = dir.path();
        std::fs::create_dir_all(home.join(".aws")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            home.join(".aws/credentials"),
            "# comment\n[default]\naws_access_key_id = AKIADEFAULT0001\n\
             aws_secret_access_key=default/secret/key\n\n[ci]\n\
             AWS_ACCESS_KEY_ID = AKIACI000000001\naws_secret_access_key = ci/secret\n\
             aws_session_token = ci-token-0001\n[half]\naws_access_key_id = AKIAHALF\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            home.join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile ci]\nregion = ap-south-1\n\
             [profile cfgonly]\naws_access_key_id = AKIACFG00000001\n\
             aws_secret_access_key = cfg/secret\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let creds = |pairs: &[(&str, &str)]| credentials_from(&env_of(pairs), Some(home));
        let c = creds(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                c.access_key_id.as_str(),
                c.secret_access_key.as_str(),
                c.session_token
            ),
            ("AKIADEFAULT0001", "default/secret/key", None)
        );
        assert!(c.source.starts_with("profile default in "), "{}", c.source);
        let c = creds(&[("AWS_PROFILE", "ci")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.session_token.as_deref(), Some("ci-token-0001"));
        assert_eq!(c.access_key_id, "AKIACI000000001");
        let c = creds(&[("AWS_PROFILE", "cfgonly")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.access_key_id, "AKIACFG00000001");
        let e = creds(&[("AWS_PROFILE", "half")]).map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.starts_with("profile half in ") && m.ends_with("has aws_access_key_id but no aws_secret_access_key")),
            "{e:?}"
        );
        let e = creds(&[("AWS_PROFILE", "nope")]).map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.starts_with("no AWS credentials") && m.contains("profile nope")),
            "{e:?}"
        );
        // An explicit file replaces ~/.aws/credentials.
        let other = home.join("other");
        std::fs::write(
            &other,
            "[default]\naws_access_key_id=AKIAOTHER000001\naws_secret_access_key=o/s\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = creds(&[(
            "AWS_SHARED_CREDENTIALS_FILE",
            other.to_str().unwrap_or_default(),
        )])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.access_key_id, "AKIAOTHER000001");

        // Regions: explicit, then host, then environment, then the profile's config.
        let region = |explicit, host, pairs: &[(&str, &str)]| {
            region_from(explicit, host, &env_of(pairs), Some(home))
        };
        let bedrock = "bedrock-runtime.us-east-2.amazonaws.com";
        assert_eq!(
            region(Some("eu-north-1"), bedrock, &[]).as_deref(),
            Some("eu-north-1")
        );
        assert_eq!(
            region(None, bedrock, &[("AWS_REGION", "x")]).as_deref(),
            Some("us-east-2")
        );
        assert_eq!(
            region(
                None,
                "proxy.internal",
                &[("AWS_DEFAULT_REGION", "ca-central-1")]
            )
            .as_deref(),
            Some("ca-central-1")
        );
        assert_eq!(
            region(None, "proxy.internal", &[]).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region(None, "proxy.internal", &[("AWS_PROFILE", "ci")]).as_deref(),
            Some("ap-south-1")
        );
        assert_eq!(
            region(None, "proxy.internal", &[("AWS_PROFILE", "cfgonly")]),
            None
        );
    }

    #[test]
    fn regions_from_bedrock_hosts() {
        for (host, want) in [
            ("bedrock-runtime.us-east-1.amazonaws.com", Some("us-east-1")),
            (
                "BEDROCK-RUNTIME.EU-CENTRAL-1.AMAZONAWS.COM.",
                Some("eu-central-1"),
            ),
            (
                "bedrock-runtime-fips.us-gov-west-1.amazonaws.com",
                Some("us-gov-west-1"),
            ),
            (
                "bedrock-runtime.cn-north-1.amazonaws.com.cn",
                Some("cn-north-1"),
            ),
            (
                "bedrock-runtime.ap-southeast-2.api.aws",
                Some("ap-southeast-2"),
            ),
            ("bedrock.us-east-1.amazonaws.com", None),
            ("bedrock-runtime.us-east-1.evil.example", None),
            ("bedrock-runtime.amazonaws.com", None),
            ("127.0.0.1", None),
        ] {
            assert_eq!(region_from_host(host).as_deref(), want, "{host}");
        }
    }

    #[test]
    fn loaded_secrets_are_redacted() {
        // Another test may replace the process-wide redactor meanwhile; registering again
        // restores the secret, as a later probe's credential load does after a reload.
        let text = "x regsecret-0123456789 y short";
        let mut shown = String::new();
        for _ in 0..5 {
            register_secrets(["regsecret-0123456789", "short"]);
            shown = redact::redact(text).into_owned();
            if shown != text {
                break;
            }
        }
        assert_eq!(shown, "x <redacted> y short");
    }
}
