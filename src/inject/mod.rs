//! `podpath inject`: add the podpath sidecar to every pod template in a
//! stream of Kubernetes YAML documents, as `linkerd inject` and
//! `istioctl kube-inject` do.
//!
//! The input text is edited in place: the sidecar's lines are inserted into
//! the `initContainers` (native sidecar, Kubernetes ≥ 1.29) or `containers`
//! (classic) sequence of each pod spec, and nothing else changes — comments,
//! quoting, key order and every other document stay byte for byte as they
//! were. Re-serialising a parsed value instead would change meaning: a serde
//! YAML round trip writes `defaultMode: 0644` back as the string `'0644'` and
//! `value: "yes"` as a bare `yes`, which kubectl's YAML 1.1 reader takes for a
//! boolean.
//!
//! The parser is `saphyr-parser` (saphyr-rs, the actively maintained successor
//! of yaml-rust/yaml-rust2, pure Rust, YAML 1.2) because its event API reports
//! the line and column of every token, which in-place editing needs. The serde
//! forks of the archived `serde_yaml` (`serde_yaml_ng`, `serde_norway`,
//! `yaml_serde`) expose only values, without positions.
//!
//! Injection is idempotent: a pod spec that already has a container or init
//! container named `podpath` is left untouched, so injecting twice yields
//! exactly the text that injecting once did.

mod json;
mod sidecar;
mod tree;

#[cfg(test)]
mod tests;

use thiserror::Error;

use tree::{Node, NodeKind, Pos};

pub use json::yaml_to_json;
pub use sidecar::{
    container_json, CONTAINER_NAME, DEFAULT_IMAGE, DEFAULT_METRICS_PORT, METRICS_PORT_NAME,
};

/// How the sidecar is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectOptions {
    /// Container image reference, e.g. `registry.example/podpath:0.1.0`.
    pub image: String,
    /// `true`: an init container with `restartPolicy: Always` (native
    /// sidecar, Kubernetes ≥ 1.29), started before and stopped after the app
    /// containers. `false`: a plain entry in `containers`.
    pub native_sidecar: bool,
    /// Port of the `/metrics`, `/healthz` and `/readyz` endpoints.
    pub metrics_port: u16,
}

impl Default for InjectOptions {
    fn default() -> Self {
        InjectOptions {
            image: DEFAULT_IMAGE.to_owned(),
            native_sidecar: true,
            metrics_port: DEFAULT_METRICS_PORT,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InjectError {
    #[error("invalid YAML at line {line}, column {column}: {message}")]
    Yaml {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("YAML nested deeper than {limit} levels (line {line})")]
    TooDeep { line: usize, limit: usize },
    #[error("{kind} {name:?} at line {line}: {reason}")]
    Unsupported {
        kind: String,
        name: String,
        line: usize,
        reason: &'static str,
    },
    #[error("invalid image reference {0:?}: only letters, digits and . _ - / : @ are allowed")]
    InvalidImage(String),
    #[error("the metrics port must be between 1 and 65535")]
    InvalidPort,
}

/// Adds the podpath sidecar to every Pod, Deployment, StatefulSet, DaemonSet,
/// ReplicaSet, ReplicationController, Job and CronJob in `input` (any number
/// of `---`-separated documents, and `kind: List` items), returning the edited
/// text. Other objects, and pods with `hostNetwork: true` (podpath would
/// capture the node's traffic there), are left as they are.
pub fn inject(input: &str, opts: &InjectOptions) -> Result<String, InjectError> {
    sidecar::validate(opts)?;
    let docs = tree::parse_stream(input)?;
    let source = Source::new(input);
    let mut edits = Vec::new();
    for root in docs.iter().flatten() {
        visit_object(root, &source, opts, &mut edits)?;
    }
    Ok(source.apply(edits))
}

/// The path from an object's root to its pod spec, by API group and kind.
fn pod_spec_path(api_version: &str, kind: &str) -> Option<&'static [&'static str]> {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    match (group, kind) {
        ("", "Pod") => Some(&["spec"]),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => Some(&["spec", "template", "spec"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

fn visit_object(
    object: &Node,
    source: &Source<'_>,
    opts: &InjectOptions,
    edits: &mut Vec<Edit>,
) -> Result<(), InjectError> {
    let api_version = object
        .get("apiVersion")
        .and_then(Node::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Node::as_str).unwrap_or("");
    if api_version == "v1" && kind == "List" {
        for item in object.get("items").and_then(Node::items).unwrap_or(&[]) {
            visit_object(item, source, opts, edits)?;
        }
        return Ok(());
    }
    let Some(path) = pod_spec_path(api_version, kind) else {
        return Ok(());
    };
    let mut spec = Some(object);
    for key in path {
        spec = spec.and_then(|node| node.get(key));
    }
    // A fragment without a pod spec (a kustomize patch, say) has nothing to
    // inject into.
    let Some(spec) = spec.filter(|s| matches!(s.kind, NodeKind::Map(_))) else {
        return Ok(());
    };
    let target = Target {
        kind,
        name: object
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Node::as_str)
            .unwrap_or(""),
        line: object.start.line,
    };
    inject_pod_spec(spec, &target, source, opts, edits)
}

/// The object being edited, for error messages.
struct Target<'a> {
    kind: &'a str,
    name: &'a str,
    line: usize,
}

impl Target<'_> {
    fn unsupported(&self, reason: &'static str) -> InjectError {
        InjectError::Unsupported {
            kind: self.kind.to_owned(),
            name: self.name.to_owned(),
            line: self.line,
            reason,
        }
    }
}

fn has_podpath(list: Option<&Node>) -> bool {
    list.and_then(Node::items).is_some_and(|items| {
        items
            .iter()
            .any(|c| c.get("name").and_then(Node::as_str) == Some(CONTAINER_NAME))
    })
}

fn inject_pod_spec(
    spec: &Node,
    target: &Target<'_>,
    source: &Source<'_>,
    opts: &InjectOptions,
    edits: &mut Vec<Edit>,
) -> Result<(), InjectError> {
    let init = spec.entry("initContainers");
    let containers = spec.entry("containers");
    if has_podpath(init.map(|(_, v)| v)) || has_podpath(containers.map(|(_, v)| v)) {
        return Ok(());
    }
    if spec.get("hostNetwork").is_some_and(Node::is_true) {
        return Ok(());
    }
    let Some((containers_key, containers)) = containers else {
        return Err(target.unsupported("the pod spec has no containers"));
    };
    if opts.native_sidecar {
        // First among the init containers, so podpath already captures while
        // the other init containers run.
        match init {
            Some((key, list)) => prepend_to(key, list, target, source, opts, edits),
            None => {
                let indent = source
                    .indent_of(containers_key.start)
                    .ok_or_else(|| target.unsupported("the pod spec is written in flow style"))?;
                let mut text = source.line(indent, "initContainers:");
                text.push_str(&sidecar::container_lines(opts, indent, source.eol));
                edits.push(Edit::insert(
                    source.line_start(containers_key.start.line),
                    text,
                ));
                Ok(())
            }
        }
    } else {
        append_to(containers, target, source, opts, edits)
    }
}

/// Puts the sidecar first in the block sequence `list` (the value of `key`),
/// or makes it the only item when the sequence is `[]` or null.
fn prepend_to(
    key: &Node,
    list: &Node,
    target: &Target<'_>,
    source: &Source<'_>,
    opts: &InjectOptions,
    edits: &mut Vec<Edit>,
) -> Result<(), InjectError> {
    let key_indent = source
        .indent_of(key.start)
        .ok_or_else(|| target.unsupported("the pod spec is written in flow style"))?;
    match &list.kind {
        NodeKind::Seq(items) => match items.first() {
            Some(first) => {
                let dash = source.dash_of(first.start).ok_or_else(|| {
                    target.unsupported("initContainers is not a block sequence of `- ` items")
                })?;
                edits.push(Edit::insert(
                    source.line_start(first.start.line),
                    sidecar::container_lines(opts, dash, source.eol),
                ));
                Ok(())
            }
            None => replace_empty(key, list, key_indent, target, source, opts, edits),
        },
        _ if list.is_null() => replace_empty(key, list, key_indent, target, source, opts, edits),
        _ => Err(target.unsupported("initContainers is not a sequence")),
    }
}

/// `initContainers: []` or `initContainers:` (null) on the key's line becomes
/// a block sequence holding only the sidecar.
fn replace_empty(
    key: &Node,
    value: &Node,
    key_indent: usize,
    target: &Target<'_>,
    source: &Source<'_>,
    opts: &InjectOptions,
    edits: &mut Vec<Edit>,
) -> Result<(), InjectError> {
    if let Some(last) = value.last {
        if value.start.line != key.start.line || last.line != key.start.line {
            return Err(target.unsupported("an empty initContainers value spans several lines"));
        }
        edits.push(Edit {
            start: source.offset(value.start),
            end: source.offset(last),
            text: String::new(),
        });
    }
    edits.push(Edit::insert(
        source.line_start(key.start.line + 1),
        sidecar::container_lines(opts, key_indent, source.eol),
    ));
    Ok(())
}

/// Puts the sidecar last in the block sequence `list`, where the sequence
/// ends: before the next token of the stream, so after the last item's
/// trailing comments and blank lines (which may belong to a `|+` scalar).
fn append_to(
    list: &Node,
    target: &Target<'_>,
    source: &Source<'_>,
    opts: &InjectOptions,
    edits: &mut Vec<Edit>,
) -> Result<(), InjectError> {
    let first = list
        .items()
        .and_then(<[Node]>::first)
        .ok_or_else(|| target.unsupported("containers is not a non-empty sequence"))?;
    let dash = source
        .dash_of(first.start)
        .ok_or_else(|| target.unsupported("containers is not a block sequence of `- ` items"))?;
    let offset = source.after(list.end);
    let mut text = String::new();
    if source
        .text
        .get(..offset)
        .is_some_and(|before| !before.is_empty() && !before.ends_with('\n'))
    {
        text.push_str(source.eol);
    }
    text.push_str(&sidecar::container_lines(opts, dash, source.eol));
    edits.push(Edit::insert(offset, text));
    Ok(())
}

/// A replacement of `text[start..end]`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

impl Edit {
    fn insert(at: usize, text: String) -> Self {
        Edit {
            start: at,
            end: at,
            text,
        }
    }
}

/// The input with its line starts, for turning positions into byte offsets.
struct Source<'a> {
    text: &'a str,
    /// Byte offset of the start of line `n + 1`.
    line_starts: Vec<usize>,
    /// The input's line ending, reused for inserted lines.
    eol: &'static str,
}

impl<'a> Source<'a> {
    fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
        Source {
            text,
            line_starts,
            eol,
        }
    }

    /// Byte offset of the start of `line` (1-based); past the last line, the
    /// end of the input.
    fn line_start(&self, line: usize) -> usize {
        line.checked_sub(1)
            .and_then(|i| self.line_starts.get(i))
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The text of `line` without its line ending.
    fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_start(line);
        let end = self.line_start(line + 1);
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }

    /// Byte offset of a position (a character column on a line).
    fn offset(&self, pos: Pos) -> usize {
        let line = self.line_text(pos.line);
        let within = line
            .char_indices()
            .nth(pos.col)
            .map_or(line.len(), |(i, _)| i);
        self.line_start(pos.line) + within
    }

    /// Byte offset where lines can be inserted to come after everything
    /// before `end`: the start of `end`'s line when only indentation precedes
    /// it there, else the start of the next line.
    fn after(&self, end: Pos) -> usize {
        if self.indent_of(end).is_some() {
            self.line_start(end.line)
        } else {
            self.line_start(end.line + 1)
        }
    }

    /// The indentation of a token that starts its line, or `None` when
    /// something precedes it.
    fn indent_of(&self, pos: Pos) -> Option<usize> {
        let line = self.line_text(pos.line);
        let before: String = line.chars().take(pos.col).collect();
        before.chars().all(|c| c == ' ').then_some(pos.col)
    }

    /// The column of the `-` that introduces the block sequence item starting
    /// at `item`: the line must read `<spaces>-<spaces><item>`.
    fn dash_of(&self, item: Pos) -> Option<usize> {
        let line = self.line_text(item.line);
        let before: String = line.chars().take(item.col).collect();
        let head = before.trim_end_matches(' ');
        let dash = head.strip_suffix('-')?;
        (dash.chars().all(|c| c == ' ') && head.len() < before.len()).then_some(dash.len())
    }

    fn line(&self, indent: usize, content: &str) -> String {
        format!("{:indent$}{content}{}", "", self.eol)
    }

    /// The input with `edits` applied. Edits never overlap: each pod spec
    /// gets one insertion, and a replaced `[]` ends before it.
    fn apply(&self, mut edits: Vec<Edit>) -> String {
        edits.sort_by_key(|e| (e.start, e.end));
        let mut out = String::with_capacity(self.text.len() + edits.len() * 1024);
        let mut copied = 0;
        for edit in edits {
            let start = edit.start.max(copied);
            out.push_str(self.text.get(copied..start).unwrap_or(""));
            out.push_str(&edit.text);
            copied = edit.end.max(start);
        }
        out.push_str(self.text.get(copied..).unwrap_or(""));
        out
    }
}
