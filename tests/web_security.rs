//! `--web.config.file` end to end, in-process on 127.0.0.1:0: TLS, client certificates, basic
//! auth, response headers, disabled endpoints, reload, and the error of every bad file under
//! tests/fixtures/webconfig. Certificates are made at test time, so no private key is committed.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use inferprobe::commands::{self, Running};
use inferprobe::webconfig::{WebConfig, WebOptions, WebSecurity};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use reqwest::tls::{Certificate, Identity, Version};
use reqwest::StatusCode;

/// A daemon config with no targets: nothing to probe, every endpoint still served.
const NO_TARGETS: &str = "{}\n";

/// Test PKI: a server CA and a server certificate for 127.0.0.1 (files in `dir`), a client CA
/// (file in `dir`) and a client identity it signed, and an identity from an unrelated CA.
struct Pki {
    dir: tempfile::TempDir,
    server_ca: String,
    client: String,
    stranger: String,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

/// A leaf certificate and key, PEM, signed by the CA.
fn leaf(names: &[&str], issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    (
        params.signed_by(&key, issuer).unwrap().pem(),
        key.serialize_pem(),
    )
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (params, key, server_ca) = ca("inferprobe test server CA");
    let (cert, key) = leaf(&["127.0.0.1", "localhost"], &Issuer::new(params, key));
    std::fs::write(dir.path().join("server.crt"), cert).unwrap();
    std::fs::write(dir.path().join("server.key"), key).unwrap();

    let (params, key, client_ca) = ca("inferprobe test client CA");
    std::fs::write(dir.path().join("client-ca.crt"), client_ca).unwrap();
    let (cert, key) = leaf(&["prometheus.test"], &Issuer::new(params, key));
    let client = format!("{cert}{key}");

    let (params, key, _) = ca("unrelated CA");
    let (cert, key) = leaf(&["stranger.test"], &Issuer::new(params, key));
    let stranger = format!("{cert}{key}");
    Pki {
        dir,
        server_ca,
        client,
        stranger,
    }
}

impl Pki {
    /// A client trusting only the test server CA.
    fn client(&self) -> reqwest::ClientBuilder {
        rustls_provider();
        reqwest::Client::builder()
            .tls_certs_only([Certificate::from_pem(self.server_ca.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(10))
    }
}

fn rustls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Writes `web_yaml` as `web.yml` in `dir` and starts a daemon behind it.
async fn start(dir: &Path, web_yaml: &str, disable_reload: bool, disable_probe: bool) -> Running {
    let web_file = dir.join("web.yml");
    std::fs::write(&web_file, web_yaml).unwrap();
    let config_file = dir.join("config.yml");
    std::fs::write(&config_file, NO_TARGETS).unwrap();
    let web = WebSecurity::new(WebOptions {
        config_file: Some(web_file),
        disable_reload,
        disable_probe,
        ..WebOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    commands::start_with_web(
        common::load(NO_TARGETS),
        Some(config_file),
        "127.0.0.1:0",
        web,
        inferprobe::shard::Shard::single(),
    )
    .await
    .expect("daemon starts")
}

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_and_refuses_plain_http() {
    let pki = pki();
    let running = start(pki.dir.path(), TLS, false, false).await;
    let port = running.addr.port();

    let res = pki
        .client()
        .build()
        .unwrap()
        .get(format!("https://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // HTTP/2 is offered by default (ALPN h2).
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert!(res.text().await.unwrap().contains("inferprobe_build_info"));

    // A TLS 1.2 client is accepted by default.
    let tls12 = pki
        .client()
        .tls_version_max(Version::TLS_1_2)
        .build()
        .unwrap();
    assert_eq!(
        tls12
            .get(format!("https://127.0.0.1:{port}/-/healthy"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let err = plain
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await;
    assert!(
        err.is_err(),
        "plain HTTP to the TLS port must fail: {err:?}"
    );

    // A client that does not trust the server's CA fails the handshake.
    rustls_provider();
    let (_, _, other_ca) = ca("another CA");
    let distrustful = reqwest::Client::builder()
        .tls_certs_only([Certificate::from_pem(other_ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    assert!(distrustful
        .get(format!("https://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .is_err());

    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_tls13_refuses_a_tls12_client_and_http2_can_be_off() {
    let pki = pki();
    let yaml = format!("{TLS}  min_version: TLS13\nhttp_server_config:\n  http2: false\n");
    let running = start(pki.dir.path(), &yaml, false, false).await;
    let url = format!("https://127.0.0.1:{}/metrics", running.addr.port());

    let tls12 = pki
        .client()
        .tls_version_max(Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(
        tls12.get(&url).send().await.is_err(),
        "a TLS 1.2-only client must be refused"
    );

    let res = pki
        .client()
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_and_verify_client_cert() {
    let pki = pki();
    let yaml = format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n"
    );
    let running = start(pki.dir.path(), &yaml, false, false).await;
    let url = format!("https://127.0.0.1:{}/metrics", running.addr.port());

    let anonymous = pki.client().build().unwrap();
    assert!(
        anonymous.get(&url).send().await.is_err(),
        "no client certificate must fail"
    );

    let stranger = pki
        .client()
        .identity(Identity::from_pem(pki.stranger.as_bytes()).unwrap())
        .build()
        .unwrap();
    assert!(
        stranger.get(&url).send().await.is_err(),
        "a certificate from another CA must fail"
    );

    let client = pki
        .client()
        .identity(Identity::from_pem(pki.client.as_bytes()).unwrap())
        .build()
        .unwrap();
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("inferprobe_build_info"));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_client_cert_accepts_any_or_none() {
    let pki = pki();
    let running = start(
        pki.dir.path(),
        &format!("{TLS}  client_auth_type: RequestClientCert\n"),
        false,
        false,
    )
    .await;
    let url = format!("https://127.0.0.1:{}/-/healthy", running.addr.port());
    assert_eq!(
        pki.client()
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let stranger = pki
        .client()
        .identity(Identity::from_pem(pki.stranger.as_bytes()).unwrap())
        .build()
        .unwrap();
    assert_eq!(
        stranger.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    running.stop().await;
}

/// bcrypt cost 4 keeps the test fast; production hashes use 10 or more.
fn users_yaml(pairs: &[(&str, &str)]) -> String {
    let mut s = "basic_auth_users:\n".to_string();
    for (user, password) in pairs {
        s.push_str(&format!(
            "  {user}: '{}'\n",
            bcrypt::hash(password, 4).unwrap()
        ));
    }
    s
}

const HEADERS: &str = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Content-Security-Policy: \"default-src 'self'\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{}{HEADERS}",
        users_yaml(&[("alice", "s3cret"), ("bob", "hunter2")])
    );
    let running = start(dir.path(), &yaml, false, false).await;
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();

    let endpoints = [
        ("GET", "/metrics"),
        ("GET", "/"),
        ("GET", "/probe?target=none"),
        ("GET", "/-/healthy"),
        ("GET", "/-/ready"),
        ("POST", "/-/reload"),
        ("GET", "/no-such-page"),
    ];
    for (i, (method, path)) in (1u8..).zip(endpoints) {
        // One client address per endpoint, so the wrong passwords stay within each address's
        // allowance of failed logins (beyond it, 429).
        let client = from_address([127, 0, 1, i]);
        let req = |c: &reqwest::Client| c.request(method.parse().unwrap(), format!("{base}{path}"));
        for creds in [
            None,
            Some(("alice", "wrong")),
            Some(("mallory", "s3cret")),
            Some(("alice", "")),
        ] {
            let mut r = req(&client);
            if let Some((u, p)) = creds {
                r = r.basic_auth(u, Some(p));
            }
            let res = r.send().await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {creds:?}"
            );
            assert_eq!(
                res.headers()["www-authenticate"],
                "Basic realm=\"inferprobe\""
            );
            // The configured headers are on refusals too.
            assert_eq!(res.headers()["x-frame-options"], "deny");
            assert_eq!(
                res.text().await.unwrap(),
                "Unauthorized\n",
                "{method} {path}"
            );
        }
    }

    let res = client
        .get(format!("{base}/metrics"))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-frame-options"], "deny");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'self'"
    );
    assert!(res.text().await.unwrap().contains("inferprobe_build_info"));
    // Cached now: the same credentials again, and the second user.
    for (u, p) in [("alice", "s3cret"), ("bob", "hunter2")] {
        let res = client
            .get(format!("{base}/-/healthy"))
            .basic_auth(u, Some(p))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{u}");
        assert_eq!(res.text().await.unwrap(), "Healthy\n");
    }
    // Authenticated, a missing target is the endpoint's own 400.
    let res = client
        .get(format!("{base}/probe?target=none"))
        .basic_auth("bob", Some("hunter2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls() {
    let pki = pki();
    let yaml = format!("{TLS}{}", users_yaml(&[("alice", "s3cret")]));
    let running = start(pki.dir.path(), &yaml, false, false).await;
    let url = format!("https://127.0.0.1:{}/metrics", running.addr.port());
    let client = pki.client().build().unwrap();
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(!res.text().await.unwrap().contains("inferprobe_"));
    let res = client
        .get(&url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_apply_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: '1; mode=block'\n";
    let running = start(dir.path(), yaml, false, false).await;
    for path in ["/metrics", "/-/healthy", "/no-such-page"] {
        let res = reqwest::get(format!("http://{}{path}", running.addr))
            .await
            .unwrap();
        assert_eq!(
            res.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
        assert_eq!(res.headers()["x-xss-protection"], "1; mode=block", "{path}");
        assert!(res.headers().get("x-frame-options").is_none());
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_reload_and_probe_answer_403() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "", true, true).await;
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.text().await.unwrap(),
        "Forbidden: /-/reload is disabled by --web.disable-reload.\n"
    );
    let res = client
        .get(format!("{base}/probe?target=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.text().await.unwrap(),
        "Forbidden: /probe is disabled by --web.disable-probe.\n"
    );
    assert_eq!(
        client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    running.stop().await;

    // Authentication comes first: a stranger learns nothing, not even that the endpoint is off.
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &users_yaml(&[("alice", "pw")]), true, true).await;
    let res = client
        .post(format!("http://{}/-/reload", running.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = client
        .post(format!("http://{}/-/reload", running.addr))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rereads_the_web_config_and_keeps_it_when_bad() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), &users_yaml(&[("alice", "one")]), false, false).await;
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let status = |u: &'static str, p: &'static str| {
        let c = client.clone();
        let url = format!("{base}/-/healthy");
        async move {
            c.get(url)
                .basic_auth(u, Some(p))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status("alice", "one").await, StatusCode::OK);

    std::fs::write(dir.path().join("web.yml"), users_yaml(&[("bob", "two")])).unwrap();
    let res = client
        .post(format!("{base}/-/reload"))
        .basic_auth("alice", Some("one"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(status("alice", "one").await, StatusCode::UNAUTHORIZED);
    assert_eq!(status("bob", "two").await, StatusCode::OK);

    std::fs::write(
        dir.path().join("web.yml"),
        "basic_auth_users:\n  carol: not-a-hash\n",
    )
    .unwrap();
    let res = client
        .post(format!("{base}/-/reload"))
        .basic_auth("bob", Some("two"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = res.text().await.unwrap();
    assert!(body.starts_with("Reloaded: "), "{body}");
    assert!(
        body.ends_with(&format!(
            "Web config reload failed; the running web config is kept.\nweb config {}: basic_auth_users.carol: not a bcrypt hash; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'\n",
            dir.path().join("web.yml").display()
        )),
        "{body}"
    );
    assert_eq!(status("bob", "two").await, StatusCode::OK);
    // The failed web config reload is reported apart from the daemon config's success.
    let metrics = client
        .get(format!("{base}/metrics"))
        .basic_auth("bob", Some("two"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        common::sample(&metrics, "inferprobe_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        common::sample(
            &metrics,
            "inferprobe_web_config_last_reload_successful",
            &[]
        ),
        Some(0.0)
    );
    std::fs::write(dir.path().join("web.yml"), users_yaml(&[("bob", "two")])).unwrap();
    running.web.reload().unwrap();
    let metrics = client
        .get(format!("{base}/metrics"))
        .basic_auth("bob", Some("two"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        common::sample(
            &metrics,
            "inferprobe_web_config_last_reload_successful",
            &[]
        ),
        Some(1.0)
    );

    // Plain HTTP cannot turn into TLS without a restart.
    let pki = pki();
    std::fs::write(
        dir.path().join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            pki.dir.path().join("server.crt").display(),
            pki.dir.path().join("server.key").display()
        ),
    )
    .unwrap();
    let e = running.web.reload().unwrap_err();
    assert_eq!(
        e.message,
        "switching between plain HTTP and TLS needs a restart"
    );
    assert_eq!(status("bob", "two").await, StatusCode::OK);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_with_an_open_keep_alive_connection() {
    let pki = pki();
    let running = start(pki.dir.path(), TLS, false, false).await;
    let client = pki.client().build().unwrap();
    let url = format!("https://127.0.0.1:{}/-/healthy", running.addr.port());
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    // The pooled connection stays open; stopping must not wait for it.
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("graceful stop");
    assert!(client.get(&url).send().await.is_err());
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from("tests/fixtures/webconfig")
}

fn fixtures(suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// Every `*.bad.yml` fails with the message in its `.expected` twin (`INFERPROBE_BLESS=1`
/// rewrites them).
#[test]
fn bad_web_configs_fail_with_the_expected_errors() {
    let files = fixtures(".bad.yml");
    assert!(files.len() >= 15, "fixtures missing: {files:?}");
    common::assert_golden(&files, |path| match WebConfig::load(path) {
        Ok(_) => format!("{} loaded without errors\n", path.display()),
        Err(e) => format!("{e}\n"),
    });
}

#[test]
fn good_web_configs_load() {
    let files = fixtures(".good.yml");
    assert!(!files.is_empty());
    for path in files {
        if let Err(e) = WebConfig::load(&path) {
            panic!("{e}");
        }
    }
    // The fixture's hash is htpasswd style ($2y$), as exporter-toolkit users have them.
    let text = std::fs::read_to_string(fixtures_dir().join("headers_and_users.good.yml")).unwrap();
    let hash = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("prometheus: "))
        .unwrap();
    assert!(bcrypt::verify("test-only-password", hash).unwrap());
    // Costs above 12 load with a warning; up to 12 without one.
    let slow = WebConfig::load(&fixtures_dir().join("bcrypt_cost13.good.yml")).unwrap();
    assert_eq!(slow.warnings(), ["web config basic_auth_users.prometheus: bcrypt cost 13 is above 12; a login that is not cached may outlast a scrape timeout, and wrong passwords cost that much CPU each"]);
    let ok = WebConfig::load(&fixtures_dir().join("headers_and_users.good.yml")).unwrap();
    assert!(ok.warnings().is_empty());
    let e = WebConfig::load(&fixtures_dir().join("missing.yml")).unwrap_err();
    assert_eq!(e.to_string(), "web config tests/fixtures/webconfig/missing.yml: cannot read web config file: no such file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_beyond_the_burst() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(
        dir.path(),
        "rate_limit:\n  interval: 1h\n  burst: 2\n",
        false,
        false,
    )
    .await;
    let url = format!("http://{}/-/healthy", running.addr);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(reqwest::get(&url).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    // The limit is per client address: another one still gets through.
    let other = from_address([127, 0, 0, 2]);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(other.get(&url).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
    running.stop().await;
}

/// A client whose connections come from `ip` (any 127/8 address is loopback on Linux).
fn from_address(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A flood of wrong passwords from one address: bcrypt runs only for that address's allowance
/// of failed logins, the rest is answered 429 at once, and another address logs in meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_flood_is_throttled_per_address() {
    use inferprobe::webconfig::{FAILED_LOGIN_BURST, FAILED_LOGIN_INTERVAL};
    let dir = tempfile::tempdir().unwrap();
    let running = start(
        dir.path(),
        &format!(
            "{}rate_limit:\n  interval: 1ms\n  burst: 1000\n",
            users_yaml(&[("prometheus", "right")])
        ),
        false,
        false,
    )
    .await;
    let url = format!("http://{}/metrics", running.addr);
    let attacker = from_address([127, 0, 0, 3]);
    let started = std::time::Instant::now();
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let c = attacker.clone();
            let url = url.clone();
            tokio::spawn(async move {
                c.get(url)
                    .basic_auth("prometheus", Some(format!("guess-{i}")))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    // Meanwhile Prometheus scrapes from its own address.
    let scraper = from_address([127, 0, 0, 1]);
    let scrape = scraper
        .get(&url)
        .basic_auth("prometheus", Some("right"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    let mut by_status = std::collections::BTreeMap::<u16, u32>::new();
    for f in flood {
        *by_status.entry(f.await.unwrap()).or_default() += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    // Every 401 cost one bcrypt: no more than the allowance plus its refill over the run.
    let bcrypts = by_status.get(&401).copied().unwrap_or(0);
    let allowed = f64::from(FAILED_LOGIN_BURST) + secs / FAILED_LOGIN_INTERVAL.as_secs_f64() + 1.0;
    eprintln!("wrong-password flood: {by_status:?} in {secs:.2}s");
    assert!(
        f64::from(bcrypts) <= allowed,
        "{bcrypts} bcrypt checks in {secs:.1}s"
    );
    assert!(
        by_status.get(&429).copied().unwrap_or(0) >= 150,
        "{by_status:?}"
    );
    assert_eq!(
        by_status
            .keys()
            .filter(|s| ![401, 429].contains(*s))
            .count(),
        0,
        "{by_status:?}"
    );
    running.stop().await;
}

const TWO_TARGETS: &str = "global:\n  schedule: {every: 1h}\n\
    simulator: {ttft: 5ms, itl: 1ms, output_tokens: 4}\n\
    targets:\n  - {name: a, dialect: openai-chat, base_url: simulator, model: m}\n\
    \x20 - {name: b, dialect: openai-chat, base_url: simulator, model: m}\n";

/// An emptied config file does not stop every target; `targets: []` does, on purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_to_drop_every_target_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, TWO_TARGETS).unwrap();
    let running = commands::start(common::load(TWO_TARGETS), Some(path.clone()), "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let reload = || {
        let c = client.clone();
        let url = format!("{base}/-/reload");
        async move {
            let r = c.post(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for emptied in ["", "# all targets moved elsewhere\n", "targets:\n"] {
        std::fs::write(&path, emptied).unwrap();
        let (status, body) = reload().await;
        assert_eq!(status, 500, "{emptied:?}: {body}");
        assert!(
            body.contains("the new config has no targets and would stop all 2 running ones; write `targets: []`"),
            "{body}"
        );
        let (_, m) = common::get(&format!("{base}/metrics")).await;
        assert_eq!(
            common::sample(&m, "inferprobe_config_last_reload_successful", &[]),
            Some(0.0)
        );
        assert_eq!(running.daemon.status().await.len(), 2, "targets kept");
    }
    std::fs::write(&path, "targets: []\n").unwrap();
    let (status, body) = reload().await;
    assert_eq!(status, 200, "{body}");
    assert!(running.daemon.status().await.is_empty());
    let (_, m) = common::get(&format!("{base}/metrics")).await;
    assert_eq!(
        common::sample(&m, "inferprobe_config_last_reload_successful", &[]),
        Some(1.0)
    );
    running.stop().await;
}

/// `inferprobe run` with a bad web config: the error on stderr and exit 1, before listening.
#[test]
fn run_exits_1_on_a_bad_web_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(&config, NO_TARGETS).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS11\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inferprobe"))
        .args(["run", "--web.listen-address=127.0.0.1:0"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.config.file={}", web.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "web config {}: tls_server_config.min_version: TLS11 is not supported: rustls implements TLS12 and TLS13 only\n",
            web.display()
        )
    );
}
