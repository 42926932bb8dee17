//! The sandbox platform's test-control routes (`/sandbox/…`), as tests
//! drive them: with this test process's control token (random, made at
//! test time) in the `x-sandbox-control` header, from loopback. A sandbox
//! a test starts in-process opens them with
//! `Sandbox::enable_control(spend_testkit::sandbox_control::token())`; one
//! started as `spend serve sandbox` gets the same token in
//! `SPEND__SANDBOX__CONTROL_TOKEN`; `spend dev` writes its own to
//! `<data-dir>/keys/sandbox-control-token`.

use std::sync::OnceLock;

/// The header the sandbox takes the token in.
pub const HEADER: &str = "x-sandbox-control";

/// This test process's control token.
pub fn token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| format!("sbc_{}", uuid::Uuid::new_v4().simple()))
}

/// `spend dev`'s control token, from its data folder.
pub fn of_data_dir(data_dir: &std::path::Path) -> String {
    let path = data_dir.join("keys").join("sandbox-control-token");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// `GET {base}{path}` with `token`, as JSON.
pub async fn get_with(token: &str, base: &str, path: &str) -> serde_json::Value {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header(HEADER, token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.unwrap()
}

/// `POST {base}{path}` with `body` and `token`, which must succeed; the
/// response.
pub async fn post_with(token: &str, base: &str, path: &str, body: serde_json::Value) -> reqwest::Response {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header(HEADER, token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    assert!(r.status().is_success(), "POST {path}: {}", r.status());
    r
}

/// [`get_with`] this process's [`token`].
pub async fn get(base: &str, path: &str) -> serde_json::Value {
    get_with(token(), base, path).await
}

/// [`post_with`] this process's [`token`].
pub async fn post(base: &str, path: &str, body: serde_json::Value) -> reqwest::Response {
    post_with(token(), base, path, body).await
}
