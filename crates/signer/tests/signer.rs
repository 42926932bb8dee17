//! Both signers produce ECDSA P-256 / SHA-256 DER signatures that an
//! independent implementation accepts: the `p256` crate for the KMS signer
//! (which never touches p256 to sign), and the `openssl` command for both.

use std::process::Command;

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use spend_signer::{KmsSigner, LocalSigner, Signer, SignerError, spki_pem};

const BODY: &[u8] = b"spendsignoff.test/ledger\n3\n1HhZ8h2Q4JhU1m0n9y5d5oC4o8p3c3m5r0tV2m7k0xE=\n";

/// Verifies with the openssl command line, a third implementation.
fn openssl_verifies(spki_der: &[u8], sig: &[u8], msg: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (k, s, m) = (dir.path().join("k.pem"), dir.path().join("s.der"), dir.path().join("m"));
    std::fs::write(&k, spki_pem(spki_der).unwrap()).unwrap();
    std::fs::write(&s, sig).unwrap();
    std::fs::write(&m, msg).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&k)
        .arg("-signature")
        .arg(&s)
        .arg(&m)
        .output()
        .expect("openssl is installed");
    out.status.success()
}

#[tokio::test]
async fn the_local_key_is_created_once_and_its_signatures_verify_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/ledger.pem");
    let a = LocalSigner::load_or_create(&path).unwrap();
    let b = LocalSigner::load_or_create(&path).unwrap();
    assert_eq!(a.key_id(), b.key_id(), "the same file is the same key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let sig = a.sign(BODY).await.unwrap();
    let der = b.public_key_der().await.unwrap();
    assert!(openssl_verifies(&der, &sig, BODY));
    assert!(!openssl_verifies(&der, &sig, b"another body"));
}

#[tokio::test]
async fn a_bad_key_file_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(&path, "not a key").unwrap();
    let err = LocalSigner::load_or_create(&path).err().unwrap();
    assert!(matches!(&err, SignerError::KeyFile { path: p, .. } if p == &path), "{err}");
    assert!(err.to_string().contains("PKCS#8"), "{err}");
}

#[tokio::test]
async fn kms_signs_raw_messages_that_p256_and_openssl_verify() {
    let client = spend_testkit::kms_client().await;
    let (key_id, alias) = spend_testkit::kms_key(&client).await;
    let signer = KmsSigner::from_client(client, &alias).await.unwrap();
    assert!(signer.key_id().contains(&key_id), "checkpoints name the resolved key, got {}", signer.key_id());
    let sig = signer.sign(BODY).await.unwrap();
    let der = signer.public_key_der().await.unwrap();
    // Independent check with p256: SHA-256 of the raw body, as RAW mode does.
    let vk = VerifyingKey::from_public_key_der(&der).unwrap();
    let parsed = Signature::from_der(&sig).unwrap();
    vk.verify(BODY, &parsed).expect("p256 accepts the KMS signature over the raw body");
    assert!(vk.verify(b"tampered", &parsed).is_err());
    assert!(openssl_verifies(&der, &sig, BODY));
    // Bodies over KMS's RAW limit are refused before the call.
    assert!(matches!(signer.sign(&vec![b'x'; 5000]).await, Err(SignerError::Refused(m)) if m.contains("4096")));
}

#[tokio::test]
async fn kms_keys_that_cannot_sign_checkpoints_are_refused_at_start() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let client = spend_testkit::kms_client().await;
    let rsa = client
        .create_key()
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap();
    let rsa_id = rsa.key_metadata().unwrap().key_id().to_string();
    let err = KmsSigner::from_client(client.clone(), &rsa_id).await.err().unwrap();
    assert!(err.to_string().contains("ECC_NIST_P256"), "{err}");
    let err = KmsSigner::from_client(client.clone(), "alias/does-not-exist").await.err().unwrap();
    assert!(err.to_string().contains("alias/does-not-exist"), "{err}");
    let err = KmsSigner::from_client(client, "").await.err().unwrap();
    assert!(err.to_string().contains("SPEND__KMS__KEY_ID"), "{err}");
}
