//! Access tokens: ES256 JWTs (RFC 9068 `at+jwt`) that the gateway already
//! validates, signed by [`spend_signer::Signer`] — a KMS key in production,
//! a local key file in `spend dev` — and named by a `kid` the gateway finds
//! in this server's JWKS, so the key can rotate without restarting a
//! gateway. KMS answers with a DER signature; a JWS carries the raw
//! `r‖s` form (RFC 7518 §3.4), so the signature is converted here.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use spend_signer::Signer;

pub use spend_credentials::access_token::{AccessClaims, Audience};

/// The `kid` of a key: its SPKI fingerprint, so that a KMS key's ARN never
/// leaves the service and two keys never share a name.
pub fn kid_of(spki_der: &[u8]) -> String {
    format!("es256-{}", &spend_core::sha256_hex(spki_der)[..16])
}

/// Signs `claims` into a compact JWS.
pub async fn sign(signer: &dyn Signer, kid: &str, claims: &AccessClaims) -> anyhow::Result<String> {
    let header = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
    );
    let der = signer
        .sign(signing_input.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("signing an access token: {e}"))?;
    let sig = Signature::from_der(&der).map_err(|e| anyhow::anyhow!("the signer's answer is not a DER ECDSA signature: {e}"))?;
    // Some verifiers refuse the high-S form; both are valid ECDSA.
    let sig = sig.normalize_s();
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes())))
}

/// One key of the JWKS document (RFC 7517), from its SPKI DER.
pub fn jwk(spki_der: &[u8]) -> anyhow::Result<serde_json::Value> {
    let key = VerifyingKey::from_public_key_der(spki_der).map_err(|e| anyhow::anyhow!("not a P-256 public key: {e}"))?;
    let point = key.to_sec1_point(false);
    let (x, y) = (
        point.x().ok_or_else(|| anyhow::anyhow!("no x coordinate"))?,
        point.y().ok_or_else(|| anyhow::anyhow!("no y coordinate"))?,
    );
    Ok(serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
        "kid": kid_of(spki_der),
        "use": "sig",
        "alg": "ES256",
    }))
}

/// The verifying key of the token `token`'s signature, if `spki_der` is it
/// (the revocation endpoint checks a presented access token was ours).
pub fn verify(spki_der: &[u8], token: &str) -> Option<serde_json::Value> {
    use p256::ecdsa::signature::Verifier as _;
    let key = VerifyingKey::from_public_key_der(spki_der).ok()?;
    let (input, sig) = token.rsplit_once('.')?;
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).ok()?).ok()?;
    key.verify(input.as_bytes(), &sig).ok()?;
    let payload = input.split_once('.')?.1;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_verifies_with_the_jwks_key_of_its_kid() {
        let dir = tempfile::tempdir().unwrap();
        let signer = spend_signer::LocalSigner::load_or_create(&dir.path().join("k.pem")).unwrap();
        let der = signer.public_key_der().await.unwrap();
        let kid = kid_of(&der);
        let claims = AccessClaims {
            iss: "http://localhost:7200".into(),
            aud: Audience::One("http://localhost:7100/mcp".into()),
            sub: "u_ada".into(),
            client_id: "c".into(),
            org: "acme".into(),
            scope: "mcp.read".into(),
            grant_id: Some("gr_1".into()),
            iat: Some(1),
            nbf: Some(1),
            exp: Some(2),
            jti: Some("j".into()),
        };
        let token = sign(&signer, &kid, &claims).await.unwrap();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["kid"], kid.as_str());
        assert_eq!(header["alg"], "ES256");
        assert_eq!(token.rsplit('.').next().map(|s| URL_SAFE_NO_PAD.decode(s).unwrap().len()), Some(64), "raw r‖s");
        let jwk = jwk(&der).unwrap();
        assert_eq!(jwk["kid"], kid.as_str());
        assert_eq!(verify(&der, &token).unwrap()["grant_id"], "gr_1");
        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert!(verify(&der, &tampered).is_none());
    }
}
