//! What the `analyze` integration tests share: running the binary, finding a
//! committed capture, cutting a section out of the table report.

use std::process::Command;

/// `podpath analyze --format FORMAT FLAGS [FILE]` (no file: the embedded seed
/// capture); its standard output, the run asserted to have succeeded.
pub fn analyze(format: &str, flags: &[&str], file: Option<&str>) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_podpath"))
        .arg("analyze")
        .args(["--format", format])
        .args(flags)
        .args(file)
        .output()
        .expect("run podpath");
    assert!(
        out.status.success(),
        "podpath failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The path of a committed capture under tests/captures.
pub fn capture(name: &str) -> String {
    format!("{}/tests/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The lines of the table's section that starts with `title`, up to a blank line.
pub fn section(table: &str, title: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in table.lines() {
        if line.starts_with(title) {
            inside = true;
        } else if inside && line.is_empty() {
            break;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
