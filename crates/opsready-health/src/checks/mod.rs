//! Ready-made checks for common dependencies.
//!
//! | check | feature | passes when |
//! |---|---|---|
//! | [`tcp`] | always | a TCP connection to the address opens |
//! | `http`, `http_with` | `http` | a `GET` of the URL (`http://` or `https://`) answers with the expected status class |
//! | `postgres` | `postgres` | `SELECT 1` runs on a connection from the pool (on one of its own, which warns, when the pool is full) |
//! | `sqlite` | `sqlite` | `SELECT count(*) FROM sqlite_master` runs on a connection from the pool |
//! | `redis` | `redis` | `PING` answers `PONG` on a connection of its own |
//! | `redis_connection` | `redis` | `PING` answers `PONG` on the service's connection |
//!
//! Each returns a [`Check`](crate::Check) to wrap in a
//! [`Component`](crate::Component), which bounds its time and caches its
//! readings.

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
mod tcp;

#[cfg(feature = "http")]
pub use http::{http, http_with};
#[cfg(feature = "redis")]
pub use redis::{redis, redis_connection};
/// The HTTP client of [`http_with`], to build its client with.
#[cfg(feature = "http")]
pub use reqwest;
#[cfg(feature = "postgres")]
pub use sql::postgres;
#[cfg(feature = "sqlite")]
pub use sql::sqlite;
pub use tcp::tcp;
