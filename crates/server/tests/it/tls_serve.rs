//! `serve --tls-cert --tls-key`: HTTPS with rustls. A real HTTPS client trusting a test CA
//! ingests and reads; plain HTTP to the TLS port gets nothing; a client that does not trust the
//! CA is refused; a connection stuck before its handshake does not hold up others.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TestServer;
use serde_json::{json, Value};

/// A test CA and a server certificate it signed (SAN 127.0.0.1 and localhost), made with the
/// `openssl` command line like `scripts/test-peers` does. Returns (ca.pem, cert.pem, key.pem).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl (install it, or run scripts/test-peers)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-days",
        "2",
        "-subj",
        "/CN=auditrelay test CA",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "server.key",
    ]);
    // PKCS#8, the form most tools write today (the server reads SEC1 and PKCS#1 too).
    run(&["pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "key.pem"]);
    run(&[
        "req",
        "-new",
        "-key",
        "key.pem",
        "-subj",
        "/CN=localhost",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "cert.pem",
    ]);
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

fn https_client(ca: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value, reqwest::Version) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let version = resp.version();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), version)
}

#[tokio::test]
async fn https_ingest_and_read_work_and_plain_http_to_the_tls_port_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let mut s = TestServer::spawn_with(
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        &[],
    );
    assert!(
        s.base.starts_with("https://127.0.0.1:"),
        "the server announces https: {}",
        s.base
    );
    let http = https_client(&ca);

    let (status, _, version) = call(http.get(s.url("/healthz"))).await;
    assert_eq!(status, 200);
    assert_eq!(version, reqwest::Version::HTTP_2, "h2 negotiated by ALPN");
    let (status, body, _) = call(
        http.post(s.url("/v1/tenants"))
            .bearer_auth(&s.admin)
            .json(&json!({ "id": "acme", "name": "Acme" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = call(
        http.post(s.url("/v1/tenants/acme/keys"))
            .bearer_auth(&s.admin)
            .json(&json!({ "name": "tls", "scopes": ["ingest", "read"] })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["key"].as_str().unwrap().to_owned();
    let (status, body, _) = call(
        http.post(s.url("/v1/events"))
            .bearer_auth(&token)
            .json(&json!([{ "type": "user.login", "id": "tls-1" }, { "type": "user.logout", "id": "tls-2" }])),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = call(http.get(s.url("/v1/events?after=0&wait=1")).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tls-1", "tls-2"]);

    // HTTP/1.1 over TLS works too (clients without h2).
    let h1 = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let (status, _, version) = call(h1.get(s.url("/healthz"))).await;
    assert_eq!((status, version), (200, reqwest::Version::HTTP_11));

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain_url = s.url("/healthz").replacen("https://", "http://", 1);
    let plain = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let got = plain.get(&plain_url).send().await;
    assert!(got.is_err(), "plain HTTP to the TLS port got an answer: {got:?}");

    // A client that does not trust the CA is refused: the certificate is really checked.
    let untrusting = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(true)
        .build()
        .unwrap();
    assert!(untrusting.get(s.url("/healthz")).send().await.is_err());

    // SIGTERM drains and exits 0 as over plain HTTP.
    assert!(s.sigterm().await.success(), "{}", s.log());
}

#[tokio::test]
async fn a_connection_that_never_shakes_hands_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let s = TestServer::spawn_with(
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        &[],
    );
    let addr = s.base.trim_start_matches("https://").to_owned();
    // Ten idle TCP connections that never send a ClientHello.
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let http = https_client(&ca);
    let started = std::time::Instant::now();
    let (status, _, _) = call(http.get(s.url("/healthz"))).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn tls_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_certs(dir.path());
    let serve = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_auditrelay"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(args)
            .env_remove("AUDITRELAY_TLS_CERT")
            .env_remove("AUDITRELAY_TLS_KEY")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = serve(&["--tls-cert", cert.to_str().unwrap()], &[]);
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
    let err = serve(&[], &[("AUDITRELAY_TLS_KEY", key.to_str().unwrap())]);
    assert!(err.contains("--tls-key needs --tls-cert"), "{err}");
    let missing = dir.path().join("nope.pem");
    let err = serve(
        &[
            "--tls-cert",
            missing.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(err.contains("nope.pem"), "{err}");
    // A key that is not the certificate's.
    let other = dir.path().join("ca.key");
    let err = serve(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            other.to_str().unwrap(),
        ],
        &[],
    );
    assert!(err.contains("does not fit") || err.contains("private key"), "{err}");
}

#[tokio::test]
async fn tls_files_from_the_environment_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let http = https_client(&ca);
    let s = TestServer::spawn_with(
        &[],
        &[
            ("AUDITRELAY_TLS_CERT", cert.to_str().unwrap()),
            ("AUDITRELAY_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    assert!(s.base.starts_with("https://"), "{}", s.base);
    assert_eq!(call(http.get(s.url("/healthz"))).await.0, 200);

    let file = dir.path().join("auditrelay.toml");
    std::fs::write(
        &file,
        format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ),
    )
    .unwrap();
    let s = TestServer::spawn_with(&["--config", file.to_str().unwrap()], &[]);
    assert!(s.base.starts_with("https://"), "{}", s.base);
    assert_eq!(call(http.get(s.url("/healthz"))).await.0, 200);
}
