//! Where the test peers live: `scripts/test-peers` installs them under `<repo>/.peers/`.

use std::path::PathBuf;

/// The repository root (where `scripts/test-peers` puts `.peers/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// The peers' Python. A missing venv FAILS the test: skipping would let a broken signature or
/// format pass unnoticed.
pub fn peer_python() -> PathBuf {
    let python = repo_root().join(".peers/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/test-peers` first (it installs the third-party verifiers)",
        python.display()
    );
    python
}
