//! The token given on the command line, and the verifier the services' settings make.

use std::io::Read;

use tower_jwt_revoke::jsonwebtoken::Algorithm;
use tower_jwt_revoke::{JwtVerifier, VerificationKey};

use crate::args::{KeyArgs, Lifetime};
use crate::error::Failure;

/// The token argument, or standard input's first line for `-`.
pub fn token(argument: &str) -> Result<String, Failure> {
    if argument != "-" {
        return Ok(argument.trim().to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|error| Failure::input(format!("cannot read the token from standard input: {error}")))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Whether keys were given to verify tokens with.
pub fn has_keys(keys: &KeyArgs) -> bool {
    keys.hs256_secret.is_some() || keys.public_key.is_some()
}

/// A verifier with the services' leeway and maximum lifetime, and `keys` when given.
///
/// Without keys it verifies nothing (every token fails), and serves for the lifetimes
/// of records alone.
pub fn verifier(keys: Option<&KeyArgs>, lifetime: &Lifetime) -> Result<JwtVerifier, Failure> {
    let mut builder = JwtVerifier::builder()
        .leeway_secs(lifetime.leeway)
        .max_token_lifetime(lifetime.max_lifetime);
    if let Some(keys) = keys {
        if let Some(secret) = &keys.hs256_secret {
            // The secret is never part of a message: KeyError names only what is wrong.
            let key = VerificationKey::hmac(Algorithm::HS256, secret.as_bytes())
                .map_err(|error| Failure::input(format!("--hs256-secret: {error}")))?;
            builder = builder.key(key);
        }
        if let Some(path) = &keys.public_key {
            builder = builder.key(public_key(path, keys.alg.as_deref().unwrap_or_default())?);
        }
        if let Some(issuer) = &keys.issuer {
            builder = builder.issuer(issuer);
        }
        for audience in &keys.audience {
            builder = builder.audience(audience);
        }
    }
    builder
        .build()
        .map_err(|error| Failure::input(format!("cannot use the keys given: {error}")))
}

fn public_key(path: &std::path::Path, algorithm: &str) -> Result<VerificationKey, Failure> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|error| Failure::input(format!("cannot read {shown}: {error}")))?;
    let algorithm: Algorithm = algorithm
        .parse()
        .map_err(|_| Failure::usage(format!("--alg {algorithm}: not an algorithm")))?;
    let key = match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => VerificationKey::ec_pem(algorithm, &pem),
        Algorithm::EdDSA => VerificationKey::ed_pem(&pem),
        _ => VerificationKey::rsa_pem(algorithm, &pem),
    };
    key.map_err(|error| Failure::input(format!("{shown} is not a {algorithm:?} public key: {error}")))
}
