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
    /// Add podpath as a native sidecar: an init container with `restartPolicy: Always` (Kubernetes >= 1.29). The default.
    #[arg(long, conflicts_with = "classic")]
    pub native_sidecar: bool,
    /// Add podpath as a plain container, for clusters older than 1.29.
    #[arg(long)]
    pub classic: bool,
    /// The podpath image, e.g. registry.example/podpath:0.1.0 or …@sha256:…; the default is the
    /// kustomize components' default too (docs/deploy.md#image).
    #[arg(long, env = "PODPATH_IMAGE", default_value = crate::inject::DEFAULT_IMAGE)]
    pub image: String,
    /// Port of podpath's /metrics, /healthz and /readyz in the pod.
    #[arg(long, env = "PODPATH_METRICS_PORT", default_value_t = crate::inject::DEFAULT_METRICS_PORT)]
    pub metrics_port: u16,
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
    let opts = InjectOptions {
        image: args.image,
        native_sidecar: !args.classic,
        metrics_port: args.metrics_port,
    };
    let out = inject(&input, &opts).with_context(|| format!("{}: cannot inject", args.file))?;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(0)
}
