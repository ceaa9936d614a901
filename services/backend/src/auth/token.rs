//! Opaque bearer secrets. Clients hold the token; the database holds only its SHA-256.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefixes make leaked tokens recognisable to secret scanners and tell the two kinds apart.
pub const SESSION_PREFIX: &str = "fcs_";
pub const API_PREFIX: &str = "fct_";

/// A new random token (256 bits) with the given prefix.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What the database stores and looks tokens up by.
pub fn digest(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_url_safe() {
        let a = generate(API_PREFIX);
        let b = generate(API_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with(API_PREFIX));
        assert_eq!(a.len(), API_PREFIX.len() + 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
    }

    #[test]
    fn digest_is_stable_and_does_not_contain_the_token() {
        let token = generate(SESSION_PREFIX);
        assert_eq!(digest(&token), digest(&token));
        assert!(!digest(&token).contains(&token[SESSION_PREFIX.len()..]));
    }
}
