//! Which signature backend jsonwebtoken verifies with.
//!
//! jsonwebtoken picks its backend from its own features, and when both are on it
//! cannot pick: it falls back to a provider that panics on first use. Cargo features
//! are additive, so "both on" arrives by itself (`--all-features`, or two crates in the
//! graph asking for different backends). We therefore verify through an explicitly
//! chosen provider, preferring aws-lc-rs whenever it is compiled in.

use jsonwebtoken::crypto::CryptoProvider;

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!(
    "tower-jwt-revoke needs a signature backend: enable the `aws_lc_rs` (default) or the `rust_crypto` feature"
);

/// Makes this crate's signature backend jsonwebtoken's process-wide default, unless
/// one was installed already.
///
/// [`JwtVerifierBuilder::build`](crate::JwtVerifierBuilder::build) calls this, so an
/// application that only verifies through this crate never needs to. Call it at the
/// top of `main` when the application itself signs or verifies tokens with
/// jsonwebtoken *before* building a verifier: with both the `aws_lc_rs` and the
/// `rust_crypto` features enabled, jsonwebtoken cannot choose a backend by itself and
/// would panic on first use.
///
/// With both features enabled, aws-lc-rs is chosen (it is several times faster for RSA
/// and ECDSA). An earlier choice, the application's or this function's, stands.
pub fn install_crypto_provider() {
    // `Err` means a provider is installed already; that choice stands.
    let _ = provider().install_default();
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
