//! The sandbox platform's test-control routes (`/sandbox/…`: faults,
//! revocations, what was applied, every token it issued) as `spend serve
//! sandbox` runs them: absent as docker-compose runs it (no control
//! token), and with a token, answered only on this machine's loopback with
//! that token — a request to this machine's other address is refused
//! whatever it presents. (The router's own test covers addresses this
//! machine may not have: services/sandbox/src/lib.rs.)

mod common;

use std::time::Duration;

use common::{Spawned, free_port, spend, wait_port};

fn serve(port: u16, control: Option<&str>) -> Spawned {
    let mut env = vec![
        ("SPEND__SANDBOX__LISTEN".to_string(), format!("0.0.0.0:{port}")),
        ("SPEND__SANDBOX__OAUTH_CLIENT_SECRET".to_string(), "client-secret-for-this-test".to_string()),
    ];
    if let Some(t) = control {
        env.push(("SPEND__SANDBOX__CONTROL_TOKEN".into(), t.into()));
    }
    let child = Spawned::new(
        spend(&env)
            .args(["serve", "sandbox"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spend serve sandbox starts"),
    );
    wait_port(port, "the sandbox", Duration::from_secs(30));
    child
}

/// This machine's address on its network, if it has one (the source
/// address of a route out; nothing is sent).
fn other_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("198.51.100.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

async fn status(url: &str, token: Option<&str>) -> u16 {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.header(spend_testkit::sandbox_control::HEADER, t);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_control_routes_are_absent_as_compose_runs_the_sandbox_and_loopback_only_with_their_token() {
    // As docker-compose runs it: no control token, no control routes; the
    // platform's own API still answers (and wants its bearer token).
    let port = free_port();
    let sandbox = serve(port, None);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(status(&format!("{base}/sandbox/oauth/issued"), None).await, 404);
    assert_eq!(status(&format!("{base}/sandbox/applied"), Some("anything")).await, 404);
    assert_eq!(status(&format!("{base}/v1/accounts"), None).await, 401);
    drop(sandbox);

    // Asked for, with a token: this machine's loopback with the token only.
    let token = spend_testkit::sandbox_control::token();
    let port = free_port();
    let _sandbox = serve(port, Some(token));
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(status(&format!("{base}/sandbox/oauth/issued"), None).await, 401);
    assert_eq!(status(&format!("{base}/sandbox/oauth/issued"), Some("a guess")).await, 401);
    assert_eq!(status(&format!("{base}/sandbox/oauth/issued"), Some(token)).await, 200);
    let issued = spend_testkit::sandbox_control::get(&base, "/sandbox/oauth/issued").await;
    assert!(issued["issued"].is_array(), "{issued}");
    match other_address() {
        Some(ip) => {
            let there = format!("http://{}", std::net::SocketAddr::new(ip, port));
            assert_eq!(status(&format!("{there}/sandbox/oauth/issued"), Some(token)).await, 403, "from {ip}");
            assert_eq!(status(&format!("{there}/v1/accounts"), None).await, 401, "the API itself answers there");
        }
        None => eprintln!("this machine has no address but loopback: the router's own test covers other addresses"),
    }
}
