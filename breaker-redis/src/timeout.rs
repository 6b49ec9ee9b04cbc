//! [`within`]: a store operation bounded in time, failing as the client's own timeouts do.

use std::io;
use std::time::Duration;

use redis::RedisError;
use tokio::time::timeout;

/// `fut` within `limit`; running out is an I/O timeout, like the client's own.
pub(crate) async fn within<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, RedisError> {
    match timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out").into()),
    }
}
