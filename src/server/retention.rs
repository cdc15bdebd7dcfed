//! The vault's soft-delete settings, as every family and the sweeper read them.

/// The vault's soft-delete settings, which fix `recoveryLevel` and `recoverableDays`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftDelete {
    pub retention_days: u32,
    pub purge_protection: bool,
}

pub const MIN_RETENTION_DAYS: u32 = 7;
pub const MAX_RETENTION_DAYS: u32 = 90;

impl Default for SoftDelete {
    fn default() -> Self {
        Self {
            retention_days: MAX_RETENTION_DAYS,
            purge_protection: false,
        }
    }
}

impl SoftDelete {
    pub fn recovery_level(&self) -> &'static str {
        match (
            self.retention_days >= MAX_RETENTION_DAYS,
            self.purge_protection,
        ) {
            (true, false) => "Recoverable+Purgeable",
            (true, true) => "Recoverable",
            (false, false) => "CustomizedRecoverable+Purgeable",
            (false, true) => "CustomizedRecoverable",
        }
    }

    pub fn retention_secs(&self) -> i64 {
        i64::from(self.retention_days) * 86_400
    }
}
