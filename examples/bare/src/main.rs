//! Bare axum serving [`bare::app`], with nothing else: the baseline of
//! `scripts/load.sh`.
//!
//! ```sh
//! BARE_ADDR=127.0.0.1:8090 cargo run --release -p bare --bin bare
//! ```

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:8090".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, bare::app()).await
}
