//! What the binary's tests share: the `spend` command with a clean
//! environment, and child processes that are killed when a test ends,
//! whatever way it ends.
#![allow(dead_code)]

pub mod agent;

use std::process::{Child, Command, Output};
use std::time::Duration;

pub const SPEND: &str = env!("CARGO_BIN_EXE_spend");

/// A `spend` command with a clean environment plus `env`.
pub fn spend(env: &[(String, String)]) -> Command {
    let mut c = Command::new(SPEND);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPEND") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    c
}

pub fn run(env: &[(String, String)], args: &[&str]) -> Output {
    spend(env).args(args).output().expect("runs spend")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A child process, killed and reaped on drop.
pub struct Spawned(Option<Child>);

impl Spawned {
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    /// The child has exited (and was reaped): nothing to kill on drop.
    pub fn forget(&mut self) {
        self.0 = None;
    }
}

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a running child")
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("a running child")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free loopback port (picked by binding port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on `port`, failing after `within`.
pub fn wait_port(port: u16, what: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
