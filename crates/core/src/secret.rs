//! A secret from configuration (a NATS password, a platform token): it can
//! be read from a file or the environment but never printed — `Debug` and
//! `Display` redact it, it has no `Serialize`, and its memory is zeroed
//! when dropped.

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    /// The secret itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`: for every
/// URL that reaches a log line or an error message.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map(|(u, _)| u).unwrap_or(userinfo);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Splits the credentials out of a URL: the URL without them, and the user
/// and password it carried (percent-decoding is left to the caller's
/// format; NATS URLs carry plain tokens).
pub fn split_credentials(url: &str) -> (String, Option<(String, Secret)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            (format!("{scheme}://{host}{tail}"), Some((user.to_string(), Secret::new(password))))
        }
        None => (url.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_never_reaches_the_text() {
        assert_eq!(redact_url("nats://gateway:s3cret@nats:4222"), "nats://gateway:***@nats:4222");
        assert_eq!(redact_url("postgres://u:p@db/x?a=b"), "postgres://u:***@db/x?a=b");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert!(!format!("{:?} {}", Secret::new("s3cret"), Secret::new("s3cret")).contains("s3cret"));
    }

    #[test]
    fn credentials_come_out_of_the_url() {
        let (url, creds) = split_credentials("nats://gateway:pw@h:4222");
        assert_eq!(url, "nats://h:4222");
        let (u, p) = creds.unwrap();
        assert_eq!((u.as_str(), p.expose()), ("gateway", "pw"));
        assert!(split_credentials("nats://h:4222").1.is_none());
    }
}
