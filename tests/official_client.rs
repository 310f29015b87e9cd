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
fn python_with_client() -> Result<PathBuf, String> {
    python_with_client_in(&venv(), &[])
}

/// The python of the venv at `venv`, with the client installed there (by pip, with
/// `pip_args`) if it is not yet. `Err` says why the check cannot run on this machine: no
/// python3, no venv module, or no way to install the client (no network): the test skips.
fn python_with_client_in(venv: &Path, pip_args: &[&str]) -> Result<PathBuf, String> {
    if Command::new("python3").arg("--version").output().is_err() {
        return Err("python3 is not installed".into());
    }
    let py = venv.join("bin/python");
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import customerio"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if has(&py) {
        return Ok(py);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .output()
        .map_err(|e| format!("python3 -m venv failed: {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "python3 -m venv failed (is the venv module installed?): {}",
            String::from_utf8_lossy(&made.stderr).trim()
        ));
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(pip_args)
        .arg(CLIENT)
        .output()
        .map_err(|e| format!("pip failed to start: {e}"))?;
    if !pip.status.success() || !has(&py) {
        let why = String::from_utf8_lossy(&pip.stderr);
        return Err(format!(
            "cannot install {CLIENT} (no network to the package index?): {}",
            why.lines().last().unwrap_or("").trim()
        ));
    }
    Ok(py)
}

#[test]
fn without_the_package_index_the_check_skips_instead_of_failing() {
    let dir = common::tempdir();
    // An index on a loopback port where nothing listens: pip cannot install, as offline.
    let got = python_with_client_in(
        &dir.path().join("venv"),
        &[
            "--no-cache-dir",
            "--retries",
            "0",
            "--timeout",
            "1",
            "--index-url",
            "http://127.0.0.1:9/simple",
        ],
    );
    let why = got.expect_err("nothing could be installed");
    assert!(
        why.contains("cannot install") || why.contains("python3"),
        "{why}"
    );
}

#[test]
fn the_official_python_client_is_accepted_over_tls() {
    let py = match python_with_client() {
        Ok(py) => py,
        Err(why) => {
            eprintln!("SKIPPED: the official Python client cannot be run here: {why}");
            return;
        }
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
