use crate::check::{Check, Reading};

/// Passes when a TCP connection to `addr` (`host:port`) opens.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use opsready_health::{Component, Status, checks};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let open = Component::new("upstream", checks::tcp(listener.local_addr().unwrap().to_string()));
/// assert_eq!(open.read().await.reading.status(), Status::Pass);
/// # });
/// ```
pub fn tcp(addr: impl Into<String>) -> impl Check {
    let addr = addr.into();
    move || {
        let addr = addr.clone();
        async move {
            match tokio::net::TcpStream::connect(&addr).await {
                Ok(_) => Reading::pass(),
                Err(error) => Reading::fail(format!("cannot connect to {addr}: {error}")),
            }
        }
    }
}
