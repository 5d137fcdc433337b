//! The podpath binary: parses the command line and reports errors to a person.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    let cli = podpath::cli::Cli::parse();
    match podpath::cli::main(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("podpath: {e:#}");
            std::process::exit(1);
        }
    }
}
