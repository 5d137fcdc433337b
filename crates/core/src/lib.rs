//! podpath's pure core: everything between a captured frame and an event.
//!
//! `decode` (byte slices in, typed views out) → `defrag` → `engine` (DNS,
//! flows, HTTP/1, TLS, h2, attribution; driven by packet time) → [`engine::Sink`]
//! events. This crate has no tokio, no HTTP server, no CLI and no capture or
//! file I/O: sources feed it [`packet::RawPacket`]s and exporters implement
//! `Sink`, both in the `podpath` crate. That is what makes "the engine is
//! pure and deterministic" a fact the compiler checks.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod attribution;
pub mod config;
pub mod decode;
pub mod defrag;
pub mod dns;
pub mod engine;
pub mod flow;
pub mod h2;
pub mod hash;
pub mod http;
pub mod packet;
pub mod time;
pub mod tls;

pub use time::Timestamp;
