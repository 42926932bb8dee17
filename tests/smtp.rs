//! A real SMTP server on loopback for a test of its own: Python's aiosmtpd
//! (scripts/test.sh installs it) storing every message it receives in a
//! Maildir, which the test reads back. Killed on drop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct SmtpServer {
    child: std::process::Child,
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as received: its headers and its whole text.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    /// The message as stored (headers and MIME parts, transfer-encoded).
    pub raw: String,
}

impl Mail {
    /// The decoded body of the part with `content_type` (`text/plain` or
    /// `text/html`).
    pub fn part(&self, content_type: &str) -> Option<String> {
        let parsed = mailparse::parse_mail(self.raw.as_bytes()).ok()?;
        find(&parsed, content_type)
    }
}

fn find(m: &mailparse::ParsedMail<'_>, content_type: &str) -> Option<String> {
    if m.subparts.is_empty() {
        return (m.ctype.mimetype == content_type).then(|| m.get_body().ok()).flatten();
    }
    m.subparts.iter().find_map(|p| find(p, content_type))
}

impl SmtpServer {
    /// Starts one on a free port; panics with the way to install it when
    /// aiosmtpd is missing.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let maildir = dir.path().join("maildir");
        // A port picked by binding :0 can be taken before the server binds
        // it: try a few.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut child = std::process::Command::new("python3")
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 runs");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        child,
                        port,
                        maildir,
                        _dir: dir,
                    };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("aiosmtpd did not start: install it with `pip install aiosmtpd` (scripts/test.sh does)");
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .flat_map(|d| std::fs::read_dir(self.maildir.join(d)).into_iter().flatten())
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
            .map(|raw| {
                let header = |name: &str| {
                    mailparse::parse_mail(raw.as_bytes())
                        .ok()
                        .and_then(|m| m.headers.iter().find(|h| h.get_key().eq_ignore_ascii_case(name)).map(|h| h.get_value()))
                        .unwrap_or_default()
                };
                Mail {
                    to: header("To"),
                    subject: header("Subject"),
                    message_id: header("Message-ID"),
                    raw: raw.clone(),
                }
            })
            .collect()
    }

    /// Waits up to `within` until `n` messages arrived; returns them all.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
