//! Desired objects (filled in next).
