//! `podpath inject FILE|-`: Kubernetes YAML in, the same YAML with the
//! podpath sidecar added to every pod template out.

use std::io::{Read, Write};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::inject::{inject, InjectOptions};

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// A YAML file (multi-document, or a List), or `-` for standard input.
    pub file: String,
    #[command(flatten)]
    pub sidecar: SidecarArgs,
}

/// The sidecar's settings, shared by `inject` and `webhook`.
#[derive(Args, Debug)]
pub struct SidecarArgs {
    /// Add podpath as a native sidecar: an init container with `restartPolicy: Always` (Kubernetes >= 1.29). The default.
    #[arg(long, conflicts_with = "classic")]
    pub native_sidecar: bool,
    /// Add podpath as a plain container, for clusters older than 1.29.
    #[arg(long, env = "PODPATH_CLASSIC")]
    pub classic: bool,
    /// The podpath image.
    #[arg(long, env = "PODPATH_IMAGE", default_value = crate::inject::DEFAULT_IMAGE)]
    pub image: String,
    /// Port of podpath's /metrics, /healthz and /readyz in the pod.
    #[arg(long, env = "PODPATH_METRICS_PORT", default_value_t = crate::inject::DEFAULT_METRICS_PORT)]
    pub metrics_port: u16,
}

impl SidecarArgs {
    pub fn options(&self) -> InjectOptions {
        InjectOptions {
            image: self.image.clone(),
            native_sidecar: !self.classic,
            metrics_port: self.metrics_port,
        }
    }
}

pub fn run(args: InjectArgs) -> Result<i32> {
    let mut input = String::new();
    if args.file == "-" {
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading standard input")?;
    } else {
        input = std::fs::read_to_string(&args.file)
            .with_context(|| format!("{}: cannot read", args.file))?;
    }
    let opts = args.sidecar.options();
    let out = inject(&input, &opts).with_context(|| format!("{}: cannot inject", args.file))?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(0)
}
