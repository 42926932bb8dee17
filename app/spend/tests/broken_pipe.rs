//! `spend policy validate F | head -1`: a reader that closes its end early
//! is no error. The command ends quietly (no panic, nothing on stderr)
//! with the exit code of the validation itself.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const SPEND: &str = env!("CARGO_BIN_EXE_spend");

fn fixture(name: &str) -> String {
    format!("{}/../../crates/policy/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn spend() -> Command {
    let mut c = Command::new(SPEND);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPEND") {
            c.env_remove(k);
        }
    }
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn policy_validate_into_a_closed_pipe_exits_quietly() {
    for (file, json, code) in [
        ("security-hardened.md", false, 0),
        ("security-hardened.md", true, 0),
        ("invalid.md", false, 1),
        ("invalid.md", true, 1),
    ] {
        // The reader is gone before `spend` writes a byte: every write is EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = spend();
        c.args(["policy", "validate", &fixture(file)]);
        if json {
            c.arg("--json");
        }
        let out = c.stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{file}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{file} --json={json}: {stderr}");
    }
}

#[test]
fn policy_validate_piped_into_head_dash_1_exits_quietly() {
    for file in ["security-hardened.md", "invalid.md"] {
        let mut child = spend()
            .args(["policy", "validate", &fixture(file)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Like `head -1`: one line, then close.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(first.contains(file), "{first}");
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        assert!(matches!(out.status.code(), Some(0 | 1)), "{file}: {:?} {stderr}", out.status);
    }
}
