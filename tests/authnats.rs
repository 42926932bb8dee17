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
        for (k, v) in passwords {
            cmd.env(k, v);
        }
        // Every other user auth.conf names gets a password of its own (the
        // server refuses to start on a variable it cannot resolve).
        let conf_text = std::fs::read_to_string(dir.path().join("auth.conf")).map_err(|e| e.to_string())?;
        for var in conf_text.split('$').skip(1).filter_map(|r| r.split_whitespace().next()) {
            if var.starts_with("SPEND_NATS_") && !passwords.iter().any(|(k, _)| *k == var) {
                cmd.env(var, format!("pw{}", uuid::Uuid::new_v4().simple()));
            }
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
