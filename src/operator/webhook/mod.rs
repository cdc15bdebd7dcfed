//! The workload-identity mutating admission webhook (placeholder, filled in below).

pub mod patch;
