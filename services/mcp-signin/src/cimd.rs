//! Client ID Metadata Documents (the MCP authorization spec's way for a
//! client to register with no registration): the client id is an HTTPS URL,
//! and the document there names the client and its redirect URIs.
//!
//! Fetching a URL a stranger chose is a server-side request forgery waiting
//! to happen, so the fetch is guarded: the host's addresses are resolved
//! first and every one must be public (no loopback, private, link-local,
//! shared or multicast address) unless `allow_private` (tests and `spend
//! dev` only); the connection goes to the address that was checked (no
//! second lookup to rebind); no redirects are followed; the document is
//! read up to [`MAX_DOCUMENT`] bytes within [`FETCH_TIMEOUT`]; and it must
//! name itself (`client_id` equal to its URL). Documents are cached for
//! [`CACHE_FOR`], a bounded number of them.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use spend_core::bounded::FifoMap;
use tokio::sync::Mutex;

use crate::core::{Client, Metadata, OAuthError, validate_metadata};

pub const MAX_DOCUMENT: usize = 16 * 1024;
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const CACHE_FOR: Duration = Duration::from_secs(300);
const CACHED: usize = 512;

pub struct Fetcher {
    allow_private: bool,
    cache: Mutex<FifoMap<String, (Client, Instant)>>,
}

/// True for an address a server-side fetch must never reach in production.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                // IETF protocol assignments (192.0.0.0/24).
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // Addresses that embed an IPv4 one a gateway may reach on the
            // fetcher's behalf — NAT64 (64:ff9b::/96), 6to4 (2002::/16),
            // IPv4-compatible (::/96) — are refused whole, whatever they
            // embed; so is documentation space (2001:db8::/32).
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
            let six_to_four = s[0] == 0x2002;
            let v4_compatible = s[..6] == [0, 0, 0, 0, 0, 0];
            let documentation = s[0] == 0x2001 && s[1] == 0x0db8;
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || nat64
                || six_to_four
                || v4_compatible
                || documentation
        }
    }
}

fn refused(why: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_client", why)
}

impl Fetcher {
    pub fn new(allow_private: bool) -> Self {
        Self {
            allow_private,
            cache: Mutex::new(FifoMap::new(CACHED)),
        }
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// The client the document at `url` describes.
    pub async fn client(&self, url: &str) -> Result<Client, OAuthError> {
        if let Some((c, at)) = self.cache.lock().await.get(&url.to_string())
            && at.elapsed() < CACHE_FOR
        {
            return Ok(c.clone());
        }
        let client = tokio::time::timeout(FETCH_TIMEOUT, self.fetch(url))
            .await
            .map_err(|_| refused(format!("the client metadata document at {url} did not arrive within {FETCH_TIMEOUT:?}")))??;
        let mut cache = self.cache.lock().await;
        cache.remove(&url.to_string());
        cache.insert_new(url.to_string(), (client.clone(), Instant::now()));
        Ok(client)
    }

    async fn fetch(&self, url: &str) -> Result<Client, OAuthError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| refused(format!("client id {url:?} is not a URL: {e}")))?;
        let host = parsed.host_str().ok_or_else(|| refused("the client metadata URL has no host"))?.to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
            .await
            .map_err(|e| refused(format!("the client metadata host {host} does not resolve: {e}")))?
            .collect();
        let Some(first) = addrs.first().copied() else {
            return Err(refused(format!("the client metadata host {host} has no address")));
        };
        if !self.allow_private
            && let Some(a) = addrs.iter().find(|a| is_private(a.ip()))
        {
            return Err(refused(format!(
                "the client metadata host {host} resolves to {}, a private, loopback or link-local address: not fetched",
                a.ip()
            )));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&bare, first)
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| refused(format!("fetching the client metadata: {e}")))?;
        let mut resp = http
            .get(parsed.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| refused(format!("fetching the client metadata at {url}: {}", e.without_url())))?;
        if !resp.status().is_success() {
            return Err(refused(format!("the client metadata at {url} answered {}", resp.status())));
        }
        if resp.content_length().is_some_and(|n| n > MAX_DOCUMENT as u64) {
            return Err(refused(format!("the client metadata at {url} is larger than {MAX_DOCUMENT} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| refused(format!("reading the client metadata at {url}: {}", e.without_url())))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(refused(format!("the client metadata at {url} is larger than {MAX_DOCUMENT} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let m: Metadata =
            serde_json::from_slice(&body).map_err(|e| refused(format!("the client metadata at {url} is not a JSON client metadata document: {e}")))?;
        if m.client_id.as_deref() != Some(url) {
            return Err(refused(format!(
                "the client metadata at {url} names client_id {:?}: a document must name its own URL",
                m.client_id.as_deref().unwrap_or("")
            )));
        }
        let (client_name, redirect_uris) = validate_metadata(&m).map_err(|e| refused(format!("the client metadata at {url}: {}", e.description)))?;
        Ok(Client {
            client_id: url.to_string(),
            client_name,
            redirect_uris,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::5db8:d822",
            "2002:a9fe:a9fe::1",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "192.0.0.170",
            "2001:db8::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
