//! The web console in a real browser: `tests/console/e2e.mjs` drives Debian's headless
//! `chromium` with `playwright-core` against this server (and a loopback webhook receiver the
//! script owns): sign-in, tenants and keys, the generated sink form with the server's field
//! error, test delivery, live events, health through a receiver outage, dead-letter retry,
//! replay, the filter preview, in-browser integrity verification and tenant isolation. It
//! saves screenshots of every page at laptop and phone width into `docs/console-screenshots/`.
//! A missing `node`, `chromium` or `node_modules` fails the test: `scripts/test-peers` installs them.
//! Plus the serving contract itself (redirect, CSP, no unknown files), without a browser.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{repo_root, TestServer};

const CHROMIUM: &str = "/usr/bin/chromium";
const E2E_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test]
async fn console_is_served_with_a_strict_csp() {
    let s = TestServer::spawn();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = http.get(s.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 308);
    assert_eq!(root.headers()["location"], "/ui/");

    let page = http.get(s.url("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert_eq!(csp, auditrelay_server::console::CSP);
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    // Nothing from another origin, nothing inline that the CSP would have to allow.
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external reference in index.html"
    );
    assert!(
        !html.contains("<style") && !html.contains("<script>"),
        "no inline style or script"
    );

    let js = http.get(s.url("/ui/app.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let missing = http.get(s.url("/ui/../Cargo.toml")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let missing = http.get(s.url("/ui/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn console_end_to_end_in_chromium() {
    let root = repo_root();
    let dir = root.join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "tests/console/node_modules is missing: run `scripts/test-peers` (npm ci there)"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run `scripts/test-peers` (apt-get install chromium)"
    );
    // Loopback receivers are allowed; every other private range stays refused, so the form
    // can show the server's field error for a private URL.
    let s = TestServer::spawn_with(
        &[
            "--allow-private-cidrs",
            "127.0.0.0/8",
            "--checkpoint-interval-secs",
            "1",
        ],
        &[],
    );
    let shots = root.join("docs/console-screenshots");
    let metrics = std::env::temp_dir().join(format!("auditrelay-console-metrics-{}.json", std::process::id()));
    let base = s.base.clone();
    let started = Instant::now();
    // Bounded: a hung browser must fail the test, not hold CI (the child is killed on drop).
    let child = tokio::process::Command::new("node")
        .arg("e2e.mjs")
        .current_dir(&dir)
        .env("AUDITRELAY_BASE", &base)
        .env("AUDITRELAY_ADMIN_TOKEN", crate::common::ADMIN_TOKEN)
        .env("SCREENSHOT_DIR", &shots)
        .env("METRICS_FILE", &metrics)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running node (scripts/test-peers installs it)");
    let output = match tokio::time::timeout(E2E_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => (output.expect("node output"), metrics),
        Err(_) => panic!(
            "the browser test did not finish within {E2E_TIMEOUT:?}; server log:\n{}",
            s.log()
        ),
    };
    let (output, metrics) = output;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed after {:?}:\n{stdout}\n{stderr}\nserver log:\n{}",
        started.elapsed(),
        s.log()
    );
    assert!(
        stdout.contains(" passed, 0 failed"),
        "the script reported its steps:\n{stdout}"
    );
    if let Ok(m) = std::fs::read_to_string(&metrics) {
        println!("console metrics: {m}");
        let _ = std::fs::remove_file(&metrics);
    }
    for page in [
        "signin",
        "overview",
        "sinks",
        "sink-form-error",
        "sink-detail",
        "sink-edit-preview",
        "live",
        "tenants",
        "integrity",
    ] {
        for width in ["laptop", "phone"] {
            let shot = root.join(format!("docs/console-screenshots/{page}-{width}.png"));
            assert!(shot.is_file(), "screenshot {} was saved", shot.display());
        }
    }
}
