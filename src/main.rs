//! The podpath binary: parses the command line and reports errors to a person.
#![forbid(unsafe_code)]

fn main() {
    let cli =
        podpath::cli::Cli::try_parse_with_origins(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match podpath::cli::main(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("podpath: {e:#}");
            std::process::exit(1);
        }
    }
}
