//! The sandbox, checked against a client nobody here wrote: Customer.io's official Python
//! client (`customerio` on PyPI), over HTTPS with the sandbox's own certificate.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The client version the check is written against.
const CLIENT: &str = "customerio==3.2.0";

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyvenv")
}

/// The venv's python with the client installed: `.ci/run` prepares it; a newcomer's first
/// `cargo test` installs it here (the only step that reaches past loopback: PyPI).
fn python_with_client() -> Option<PathBuf> {
    if Command::new("python3").arg("--version").output().is_err() {
        return None;
    }
    let py = venv().join("bin/python");
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import customerio"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !has(&py) {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv())
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(venv().join("bin/pip"))
            .args(["install", "--quiet", CLIENT])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install {CLIENT} failed");
    }
    assert!(has(&py), "{CLIENT} is not importable from {}", py.display());
    Some(py)
}

#[test]
fn the_official_python_client_is_accepted_over_tls() {
    let Some(py) = python_with_client() else {
        eprintln!("SKIPPED: python3 is not installed, so the official Python client cannot be run");
        return;
    };
    let dir = common::tempdir();
    let cert = dir.path().join("sandbox.pem");
    let (mut sandbox, url) = common::spawn_sandbox(&[
        "--limit",
        "0",
        "--tls",
        "--cert-out",
        cert.to_str().unwrap(),
    ]);
    assert!(
        url.starts_with("https://127.0.0.1:"),
        "first stdout line: {url:?}"
    );
    let out = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official_client/check.py"))
        .env("SANDBOX_URL", &url)
        .env("CUSTOMERIO_SITE_ID", common::SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", common::KEY)
        .env("REQUESTS_CA_BUNDLE", &cert)
        .output()
        .unwrap();
    let _ = sandbox.kill();
    let _ = sandbox.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}
