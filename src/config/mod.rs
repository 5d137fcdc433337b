//! The pod's configuration ([`podpath_core::config`]) plus the one part that
//! reads the machine: sizing the tables from the container's memory limit.

pub use podpath_core::config::*;

pub mod memory;
