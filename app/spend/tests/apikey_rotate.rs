//! `spend api-key rotate` learns the key's state from the log: a revoked
//! key — by `revoke KEY` or by `revoke --all` — is refused with a clear
//! error (exit 1), and nothing is recorded.

use std::process::{Command, Output};

const SPEND: &str = env!("CARGO_BIN_EXE_spend");

fn spend(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut c = Command::new(SPEND);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPEND") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.args(args).arg("--data-dir").arg(dir).output().expect("runs spend")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Creates a key in `org`; its id.
fn create(dir: &std::path::Path, org: &str) -> String {
    let out = spend(dir, &["api-key", "create", "--org", org, "--name", "bot"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim()[4..16].to_string()
}

fn events(dir: &std::path::Path) -> u64 {
    let log = std::fs::read(dir.join("events/events.log")).unwrap();
    log.len() as u64
}

#[test]
fn rotate_refuses_a_revoked_key_including_one_revoked_by_revoke_all() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // A live key rotates; its replacement is printed once.
    let live = create(dir, "acme");
    let out = spend(dir, &["api-key", "rotate", &live, "--org", "acme", "--overlap-hours", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ssk_"));
    // Not another organisation's key.
    let out = spend(dir, &["api-key", "rotate", &live, "--org", "globex"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("no key {live} in globex")), "{}", text(&out.stderr));

    // Revoked by id.
    let one = create(dir, "acme");
    let out = spend(dir, &["api-key", "revoke", &one, "--org", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = events(dir);
    let out = spend(dir, &["api-key", "rotate", &one, "--org", "acme"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("revoked"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "no secret printed");
    assert_eq!(events(dir), before, "nothing recorded");

    // Revoked by `revoke --all`: its own subject still ends with its
    // creation, but the organisation's revocation covers it.
    let other = create(dir, "globex");
    let all = create(dir, "acme");
    let out = spend(dir, &["api-key", "revoke", "--all", "--org", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before_all = events(dir);
    assert!(before_all > before);
    for key in [&all, &live] {
        let out = spend(dir, &["api-key", "rotate", key, "--org", "acme"]);
        assert_eq!(out.status.code(), Some(1), "{key}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("has been revoked and cannot be rotated"), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }
    assert_eq!(events(dir), before_all, "a refused rotation records nothing");
    // Other organisations' keys, and keys created after, rotate.
    let out = spend(dir, &["api-key", "rotate", &other, "--org", "globex"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = create(dir, "acme");
    let out = spend(dir, &["api-key", "rotate", &after, "--org", "acme"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
