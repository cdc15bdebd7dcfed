//! `SecretSync`: vault objects written into a Kubernetes Secret, read as a ServiceAccount of
//! the namespace, refreshed on the vault's events and periodically, with rollout restarts
//! of the workloads that use them (docs/sync.md).
//!
//! Pure parts: [`restart`] (when to restart) and [`events`] (the trigger's proof); the
//! reconcile is the I/O shell around them.

pub mod events;
pub mod plan;
pub mod reconcile;
pub mod render;
pub mod restart;
