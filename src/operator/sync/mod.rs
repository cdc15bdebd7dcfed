//! `SecretSync`: vault objects written into a Kubernetes Secret, read as a ServiceAccount of
//! the namespace, refreshed on the vault's events and periodically, with rollout restarts
//! of the workloads that use them (docs/sync.md).
//!
//! Pure parts: [`plan`] (the spec validated and expanded), [`render`] (the Secret's data,
//! templates, hash, ownership), [`restart`] (when to restart) and [`events`] (the trigger's
//! proof); [`reconcile`] is the I/O shell around them.

pub mod events;
pub mod plan;
pub mod reconcile;
pub mod render;
pub mod restart;
