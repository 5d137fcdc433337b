//! podpath: passive, packet-level path attribution for a Kubernetes pod.
//!
//! One-way flow: `capture` (live AF_PACKET or files) → the pure core crate
//! `podpath-core` (`decode` on byte slices, `engine`: DNS, flows, HTTP,
//! attribution, driven by packet time) → exporters (`metrics`, `report`).
//! This crate holds everything that does I/O or talks to people: sources,
//! exporters, the CLI, `inject` and the webhook. The core's modules are
//! re-exported under their own names, so `podpath::dns` is
//! `podpath_core::dns`. See ARCHITECTURE.md.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub use podpath_core::{
    attribution, decode, defrag, dns, engine, flow, h2, hash, http, packet, time, tls, Timestamp,
};

pub mod capture;
pub mod cli;
pub mod config;
pub mod inject;
pub mod metrics;
pub mod ptr;
pub mod report;
pub mod webhook;

#[cfg(test)]
mod engine_tests;
