//! A nats-server of a test's own, configured with the production
//! permissions (k8s/nats/auth.conf): for the attacks a service's own NATS
//! credentials could make, which the shared test server (no auth) cannot
//! show. Passwords come from the environment variables auth.conf names
//! (`SPEND_NATS_<USER>_PASSWORD`), given per server.

use std::process::Stdio;
use std::time::Duration;

/// A running nats-server with JetStream and k8s/nats/auth.conf; killed on
/// drop.
pub struct AuthNats {
    child: tokio::process::Child,
    pub url: String,
    /// The server's log, where it names each permissions violation.
    pub log_file: std::path::PathBuf,
    /// Every user's password, by user name (`gateway`, `admin`, …).
    passwords: std::collections::BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

impl Drop for AuthNats {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl AuthNats {
    /// The event log's configuration for logging in as `user` (its own
    /// inbox prefix, as auth.conf requires); `manage` creates the streams,
    /// which only the `admin` user may.
    pub fn config(&self, user: &str, password: &str, manage: bool) -> spend_eventlog::jetstream::JetStreamConfig {
        spend_eventlog::jetstream::JetStreamConfig {
            url: self.url.clone(),
            user: Some(user.into()),
            password: Some(spend_core::Secret::new(password)),
            inbox_prefix: Some(format!("_INBOX_{user}")),
            manage,
            ..Default::default()
        }
    }

    /// Starts one with a password of its own for every user, and the
    /// streams created (as `admin`, the only user that may).
    pub async fn with_streams() -> Self {
        let nats = Self::start(&[]).await;
        spend_eventlog::jetstream::JetStreamLog::connect(nats.config("admin", nats.password("admin"), true))
            .await
            .expect("creating the streams as admin");
        nats
    }

    /// The environment `spend` needs to log in as `user` (its own password
    /// and inbox prefix; the URL carries no credentials).
    pub fn spend_env(&self, user: &str) -> Vec<(String, String)> {
        [
            ("SPEND__NATS__URL", self.url.clone()),
            ("SPEND__NATS__USER", user.to_string()),
            ("SPEND__NATS__PASSWORD", self.password(user).to_string()),
            ("SPEND__NATS__INBOX_PREFIX", format!("_INBOX_{user}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `user`'s password on this server.
    pub fn password(&self, user: &str) -> &str {
        self.passwords.get(user).unwrap_or_else(|| panic!("auth.conf has no user {user}"))
    }

    /// The event log as `user`, with its own password and inbox prefix.
    pub async fn log_as(&self, user: &str) -> std::sync::Arc<dyn spend_eventlog::EventLog> {
        std::sync::Arc::new(
            spend_eventlog::jetstream::JetStreamLog::connect(self.config(user, self.password(user), false))
                .await
                .unwrap_or_else(|e| panic!("connecting as {user}: {e}")),
        )
    }

    /// Starts one on a free loopback port with `passwords` (environment
    /// variable, value) pairs.
    pub async fn start(passwords: &[(&str, &str)]) -> Self {
        // A port picked by binding :0 can be taken by someone else before
        // the server binds it: try a few.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(passwords).await {
                Ok(s) => return s,
                Err(e) => last = e,
            }
        }
        panic!("nats-server did not start: {last}");
    }

    async fn try_start(passwords: &[(&str, &str)]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // Includes are relative to the including file: copy it beside.
        std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../k8s/nats/auth.conf"), dir.path().join("auth.conf")).map_err(|e| e.to_string())?;
        let conf = dir.path().join("nats.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\ninclude \"auth.conf\"\n",
                dir.path().join("js").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let log_file = dir.path().join("nats.log");
        let stderr = std::fs::File::create(dir.path().join("stderr")).map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(nats_server());
        cmd.arg("-c").arg(&conf).arg("-l").arg(&log_file).stdout(Stdio::null()).stderr(stderr);
        // Every user auth.conf names has a password: the one given, else
        // one of its own (the server refuses to start on a variable it
        // cannot resolve).
        let conf_text = std::fs::read_to_string(dir.path().join("auth.conf")).map_err(|e| e.to_string())?;
        let mut all = std::collections::BTreeMap::new();
        for var in conf_text.split('$').skip(1).filter_map(|r| r.split_whitespace().next()) {
            let Some(user) = var.strip_prefix("SPEND_NATS_").and_then(|v| v.strip_suffix("_PASSWORD")) else {
                continue;
            };
            let given = passwords.iter().find(|(k, _)| *k == var).map(|(_, v)| v.to_string());
            let pw = given.unwrap_or_else(|| format!("pw{}", uuid::Uuid::new_v4().simple()));
            cmd.env(var, &pw);
            all.insert(user.to_lowercase(), pw);
        }
        let mut child = cmd.kill_on_drop(true).spawn().map_err(|e| format!("spawning nats-server: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                let _ = child.start_kill();
                return Err(format!(
                    "port {port}, exit {exited:?}: {} {}",
                    std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default(),
                    std::fs::read_to_string(&log_file).unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            log_file,
            passwords: all,
            _dir: dir,
        })
    }
}

/// Debian's nats-server, wherever the package put it.
fn nats_server() -> String {
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    "nats-server".into()
}
