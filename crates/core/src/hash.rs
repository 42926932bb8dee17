//! Lower-case hex SHA-256, the one digest the product names things by:
//! an approval's `approved_hash`, a key's fingerprint, a credential's
//! digest, a refresh token as stored. One function, so that two places
//! naming the same bytes always agree.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(bytes.as_ref()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_digest_of_abc() {
        assert_eq!(super::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(super::sha256_hex(b"abc"), super::sha256_hex(String::from("abc")));
    }
}
