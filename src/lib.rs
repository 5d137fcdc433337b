//! podpath: passive, packet-level path attribution for a Kubernetes pod.
//!
//! One-way flow: `capture` (live AF_PACKET or files) → `decode` (pure, on
//! byte slices) → `engine` (DNS, flows, HTTP, attribution; driven by packet
//! time) → exporters (`metrics`, `report`). See ARCHITECTURE.md.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod attribution;
pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod defrag;
pub mod dns;
pub mod engine;
pub mod flow;
pub mod h2;
pub mod hash;
pub mod http;
pub mod inject;
pub mod metrics;
pub mod ptr;
pub mod report;
pub mod time;
pub mod tls;
pub mod webhook;

pub use time::Timestamp;
