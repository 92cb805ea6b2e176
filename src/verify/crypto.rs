//! Which signature backend jsonwebtoken verifies with.
//!
//! jsonwebtoken picks its backend from its own features, and when both are on it
//! cannot pick: it falls back to a provider that panics on first use. Cargo features
//! are additive, so "both on" arrives by itself (`--all-features`, or two crates in the
//! graph asking for different backends). We therefore verify through an explicitly
//! chosen provider, preferring aws-lc-rs whenever it is compiled in.

use std::sync::Once;

use jsonwebtoken::crypto::CryptoProvider;

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!(
    "tower-jwt-revoke needs a signature backend: enable the `aws_lc_rs` (default) or the `rust_crypto` feature"
);

/// Makes this crate's signature backend jsonwebtoken's process-wide default, unless
/// one was installed already.
///
/// You rarely need to call this: every entry point of this crate that a program
/// touches first ([`JwtVerifier::builder`](crate::JwtVerifier::builder), the
/// [`VerificationKey`](crate::VerificationKey) constructors,
/// [`RevocationLayer::new`](crate::RevocationLayer::new),
/// [`Revoker::new`](crate::Revoker::new) and the stores' constructors) calls it.
///
/// Why it matters: when both the `aws_lc_rs` and the `rust_crypto` backends of
/// jsonwebtoken are compiled in (this crate asks for one, the application's own
/// `jsonwebtoken` dependency for the other, and Cargo unifies features), jsonwebtoken
/// cannot choose by itself and *the application's own* `encode`/`decode` panic with
/// "Could not automatically determine the process-level CryptoProvider". Call this at
/// the top of `main` when the application signs or verifies tokens with jsonwebtoken
/// before it touches this crate.
///
/// With both backends compiled in, aws-lc-rs is chosen (it is several times faster for
/// RSA and ECDSA). An earlier choice, the application's or this function's, stands.
/// Idempotent and cheap after the first call.
pub fn install_crypto_provider() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // `Err` means a provider is installed already; that choice stands.
        let _ = provider().install_default();
    });
}

/// The backend this crate verifies with. [`JwtVerifier`](crate::JwtVerifier) calls it
/// directly rather than through jsonwebtoken's process-wide default, so verification
/// works whatever the rest of the process installed, or failed to.
pub(crate) fn provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws_lc_rs")]
    return &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    return &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
}
