//! [`FleetError`]: the builder setting that `build` refused, and why.

use std::fmt;

/// An invalid [`RedisFleetBuilder`] setting: which one, and why.
///
/// [`RedisFleetBuilder`]: crate::builder::RedisFleetBuilder
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetError {
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

impl FleetError {
    pub(crate) fn new(field: &'static str, message: &str) -> Self {
        FleetError {
            field,
            message: message.to_owned(),
        }
    }

    /// The setting at fault: `url`, `seeds` (of a cluster), `namespace`, `queue_capacity`,
    /// `connect_timeout`, `command_timeout`, `margin`, `operator_ttl`, `probe_lease`, `quorum`,
    /// `tls_root_certificate`, `tls_client_certificate`, or `runtime` (built outside a tokio
    /// runtime).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid fleet `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for FleetError {}
