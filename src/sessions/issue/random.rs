//! Identifiers nobody can guess: token ids, session ids, refresh tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why no random identifier could be made: the operating system's generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(getrandom::Error);

/// `N` bytes from the operating system's generator, URL-safe base64 without padding.
pub(crate) fn random_id<const N: usize>() -> Result<String, RandomError> {
    let mut bytes = [0u8; N];
    fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Fills `bytes` from the operating system's generator.
pub(crate) fn fill(bytes: &mut [u8]) -> Result<(), RandomError> {
    getrandom::getrandom(bytes).map_err(RandomError)
}

#[cfg(test)]
mod tests {
    use super::random_id;

    #[test]
    fn ids_are_url_safe_and_differ() {
        let first = random_id::<16>().unwrap();
        let second = random_id::<16>().unwrap();
        assert_eq!(first.len(), 22, "16 bytes are 22 base64 characters");
        assert_ne!(first, second);
        assert!(
            first
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
}
