//! What the crate tells operators: readiness for probes (`health.rs`, public as
//! [`tower_jwt_revoke::health`](crate::health)) and metrics and tracing (`telemetry.rs`,
//! through the `metrics` facade; the application picks the exporter).
//!
//! May use: the stores' health. Used by: the layer, the stores, the endpoints.

pub mod health;
pub(crate) mod telemetry;
