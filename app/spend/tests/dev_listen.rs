//! `spend dev` listens where the configuration says: `SPEND__GATEWAY__LISTEN`,
//! `SPEND__POLICY__LISTEN` and `SPEND__SANDBOX__LISTEN` are the defaults of
//! `--gateway-listen`, `--policy-listen` and `--sandbox-listen`; a flag
//! given still wins.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SPEND: &str = env!("CARGO_BIN_EXE_spend");

/// Killed on drop, so a failing test leaves no `spend dev` behind.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Four distinct free ports: every listener is held until all are picked,
/// so the kernel cannot hand the same port out twice.
fn free_ports() -> [u16; 4] {
    let held: Vec<_> = (0..4).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

fn listening(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).is_ok()
}

#[test]
fn spend_dev_listens_on_the_configured_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let [gateway, policy, sandbox, sandbox_flag] = free_ports().map(|p| format!("127.0.0.1:{p}"));
    let mut c = Command::new(SPEND);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPEND") || k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    let mut child = Spawned(
        c.env("SPEND__GATEWAY__LISTEN", &gateway)
            .env("SPEND__POLICY__LISTEN", &policy)
            .env("SPEND__SANDBOX__LISTEN", &sandbox)
            .args(["dev", "--data-dir", dir.path().to_str().unwrap()])
            .args(["--ledger-listen", "127.0.0.1:0", "--approval-listen", "127.0.0.1:0"])
            .args(["--sandbox-listen", &sandbox_flag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(listening(&gateway) && listening(&policy) && listening(&sandbox_flag)) {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "spend dev exited before listening on {gateway} (gateway) and {policy} (policy)"
        );
        assert!(
            Instant::now() < deadline,
            "spend dev is not listening on SPEND__GATEWAY__LISTEN {gateway} ({}), SPEND__POLICY__LISTEN {policy} ({}) and --sandbox-listen {sandbox_flag} ({})",
            listening(&gateway),
            listening(&policy),
            listening(&sandbox_flag)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The gateway it is: its health check answers there.
    let mut s = TcpStream::connect(&gateway).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!listening(&sandbox), "the --sandbox-listen flag wins over SPEND__SANDBOX__LISTEN");
}
