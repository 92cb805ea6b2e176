//! The common [`ClaimsCheck`]s: a scope, an audience, a role.
//!
//! Providers spell these claims differently, so each check reads every common form:
//!
//! | check          | claims read                                                          |
//! |----------------|----------------------------------------------------------------------|
//! | scope          | `scope` (RFC 9068: space-separated), `scp` (Okta: array; Entra ID: space-separated) |
//! | audience       | `aud` (a string or an array)                                         |
//! | role           | `roles` (Entra ID, Auth0 custom claims), `realm_access.roles` (Keycloak) |
//! | client role    | `resource_access.{client}.roles` (Keycloak)                          |

use std::collections::HashMap;

use serde::Deserialize;

use super::{AuthorizeLayer, ClaimsCheck, Denied};
use crate::verify::token::VerifiedToken;

/// Requires the token to grant `scope` (one scope; call `.layer` twice, or write a
/// closure, for several). An empty `scope` is granted to no token.
pub fn require_scope(scope: impl Into<String>) -> AuthorizeLayer<RequireScope> {
    AuthorizeLayer::new(RequireScope { scope: scope.into() })
}

/// Requires `audience` among the token's `aud`, for a route meant for one of several
/// audiences a verifier accepts.
pub fn require_audience(audience: impl Into<String>) -> AuthorizeLayer<RequireAudience> {
    AuthorizeLayer::new(RequireAudience {
        audience: audience.into(),
    })
}

/// Requires `role` in the token's `roles` or Keycloak's `realm_access.roles`.
pub fn require_role(role: impl Into<String>) -> AuthorizeLayer<RequireRole> {
    AuthorizeLayer::new(RequireRole {
        client: None,
        role: role.into(),
    })
}

/// Requires `role` among Keycloak's client roles of `client`
/// (`resource_access.{client}.roles`).
pub fn require_client_role(
    client: impl Into<String>,
    role: impl Into<String>,
) -> AuthorizeLayer<RequireRole> {
    AuthorizeLayer::new(RequireRole {
        client: Some(client.into()),
        role: role.into(),
    })
}

/// The check of [`require_scope`].
#[derive(Debug, Clone)]
pub struct RequireScope {
    scope: String,
}

/// The check of [`require_audience`].
#[derive(Debug, Clone)]
pub struct RequireAudience {
    audience: String,
}

/// The check of [`require_role`] and [`require_client_role`].
#[derive(Debug, Clone)]
pub struct RequireRole {
    client: Option<String>,
    role: String,
}

/// A claim that is one string or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// Whether `wanted` is among the values; a single string is a space-separated
    /// list (`scope`, Entra ID's `scp`).
    fn contains_word(&self, wanted: &str) -> bool {
        match self {
            Self::One(words) => words.split(' ').any(|word| word == wanted),
            Self::Many(values) => values.iter().any(|value| value == wanted),
        }
    }

    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(value) => value == wanted,
            Self::Many(values) => values.iter().any(|value| value == wanted),
        }
    }
}

#[derive(Deserialize)]
struct RoleList {
    #[serde(default)]
    roles: Option<OneOrMany>,
}

impl ClaimsCheck for RequireScope {
    fn check(&self, token: &VerifiedToken) -> Result<(), Denied> {
        #[derive(Deserialize)]
        struct Scopes {
            #[serde(default)]
            scope: Option<OneOrMany>,
            #[serde(default)]
            scp: Option<OneOrMany>,
        }
        let granted = !self.scope.is_empty()
            && token.claims::<Scopes>().is_ok_and(|claims| {
                [claims.scope, claims.scp]
                    .iter()
                    .flatten()
                    .any(|scopes| scopes.contains_word(&self.scope))
            });
        if granted {
            Ok(())
        } else {
            Err(Denied::missing_scope(self.scope.clone()))
        }
    }
}

impl ClaimsCheck for RequireAudience {
    fn check(&self, token: &VerifiedToken) -> Result<(), Denied> {
        #[derive(Deserialize)]
        struct Audience {
            #[serde(default)]
            aud: Option<OneOrMany>,
        }
        let meant = token
            .claims::<Audience>()
            .is_ok_and(|claims| claims.aud.is_some_and(|aud| aud.contains(&self.audience)));
        if meant { Ok(()) } else { Err(Denied::default()) }
    }
}

impl ClaimsCheck for RequireRole {
    fn check(&self, token: &VerifiedToken) -> Result<(), Denied> {
        #[derive(Deserialize)]
        struct Roles {
            #[serde(default)]
            roles: Option<OneOrMany>,
            #[serde(default)]
            realm_access: Option<RoleList>,
            #[serde(default)]
            resource_access: Option<HashMap<String, RoleList>>,
        }
        let Ok(claims) = token.claims::<Roles>() else {
            return Err(Denied::default());
        };
        let has = |list: Option<&OneOrMany>| list.is_some_and(|roles| roles.contains(&self.role));
        let granted = match &self.client {
            Some(client) => has(claims
                .resource_access
                .as_ref()
                .and_then(|access| access.get(client))
                .and_then(|list| list.roles.as_ref())),
            None => {
                has(claims.roles.as_ref())
                    || has(claims.realm_access.as_ref().and_then(|list| list.roles.as_ref()))
            }
        };
        if granted { Ok(()) } else { Err(Denied::default()) }
    }
}
