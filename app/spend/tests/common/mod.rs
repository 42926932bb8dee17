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

/// The passkey page's relying party as the test humans' software passkeys
/// were made on (`spend_draft::humans::test_rp`): every verifier a test
/// starts with it trusts them.
pub fn test_passkey_env() -> Vec<(String, String)> {
    let rp = spend_draft::humans::test_rp();
    vec![("SPEND__PASSKEY__RP_ID".into(), rp.rp_id), ("SPEND__PASSKEY__ORIGIN".into(), rp.origin)]
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

/// A free loopback port (picked by binding port 0), never one this test
/// process handed out before: the kernel may give a just-closed port again,
/// and two services told the same port make a test fail for nothing.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits until something listens on `port`, failing after `within`.
pub fn wait_port(port: u16, what: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `spend serve sandbox` and `spend serve executor` need for
/// connected accounts: the OAuth client's secret (both), a vault key on
/// moto's KMS and a database of the test's own (the executor). Keep the
/// database alive as long as the executor runs.
pub async fn vault_env() -> (Vec<(String, String)>, spend_testkit::TestDatabase) {
    let db = spend_testkit::TestDatabase::create().await;
    let kms = spend_testkit::kms_client().await;
    let key = spend_testkit::kms_vault_key(&kms).await;
    let env = [
        ("SPEND__SANDBOX__OAUTH_CLIENT_SECRET", format!("client-secret-{}", spend_testkit::unique())),
        ("SPEND__EXECUTOR__VAULT_KEY_ID", key),
        ("SPEND__EXECUTOR__DATABASE_URL", db.url.clone()),
        ("SPEND__KMS__ENDPOINT", spend_testkit::kms_endpoint()),
        ("SPEND__KMS__REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
    ];
    let mut env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let secret = env[0].1.clone();
    env.push(("SPEND__EXECUTOR__OAUTH_CLIENT_SECRET".into(), secret));
    (env, db)
}

/// `spend serve <service>` with `env`, once it listens on `port` (its
/// stderr inherited, so a failure shows in the test's output).
pub fn serve(env: &[(String, String)], service: &str, port: u16) -> Spawned {
    let child = spend(env)
        .args(["serve", service])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spend serve {service}: {e}"));
    let child = Spawned::new(child);
    wait_port(port, service, std::time::Duration::from_secs(30));
    child
}

/// Connects `account` of `org` through `spend account connect` (read
/// access), the test answering the platform's consent page as the account
/// owner would. Returns what the command printed.
pub async fn connect_account(env: &[(String, String)], executor_url: &str, org: &str, account: &str) -> String {
    use std::io::BufRead as _;
    let mut child = Spawned::new(
        spend(env)
            .args(["account", "connect", "--org", org, "--account", account, "--executor-url", executor_url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spend account connect starts"),
    );
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = tokio::task::block_in_place(|| lines.next()).expect("the consent URL").unwrap();
    assert!(url.contains("/oauth/authorize?"), "{url}");
    let back = spend_testkit::consent::answer_and_return(&url, account, "allow").await;
    assert!(back.status().is_success(), "the CLI's callback: {}", back.status());
    let out = tokio::task::block_in_place(|| {
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().unwrap();
        let mut err = String::new();
        use std::io::Read as _;
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (status, rest.join("\n"), err)
    });
    child.forget();
    assert!(out.0.success(), "spend account connect failed: {}", out.2);
    format!("{}\n{}", out.1, out.2)
}
