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
//! Injection is idempotent: the pod template records the podpath version in
//! the annotation `podpath.io/injected-version`, and a sidecar inject added
//! that still matches what it would write is left untouched, so injecting
//! twice yields exactly the text that injecting once did. A sidecar that no
//! longer matches (another image, port or podpath version) is rewritten in
//! place; a `podpath` container without the annotation is someone else's and
//! is left alone. Every object gets an [`Outcome`] saying what was done or
//! why it was skipped.

mod json;
mod sidecar;
mod tree;

#[cfg(test)]
mod tests;

use thiserror::Error;

use tree::{Node, NodeKind, Pos};

pub use json::yaml_to_json;
pub use sidecar::{
    container_json, CONTAINER_NAME, DEFAULT_IMAGE, DEFAULT_METRICS_PORT, IMAGE_NAME,
    METRICS_PORT_NAME,
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

/// The label or annotation that opts a workload in (`enabled`, the label the
/// kustomize components in `deploy/sidecar/` select on) or out (`disabled`).
pub const INJECT_KEY: &str = "podpath.io/inject";
/// The pod template annotation recording which podpath's sidecar `inject`
/// wrote; its presence marks the `podpath` container as inject's to upgrade.
pub const VERSION_ANNOTATION: &str = "podpath.io/injected-version";
/// The version recorded in [`VERSION_ANNOTATION`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which workloads get the sidecar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every workload except those opted out.
    #[default]
    AllButOptedOut,
    /// Only workloads labelled (or annotated) `podpath.io/inject: enabled`,
    /// the kustomize components' rule.
    OptedIn,
}

/// The edited text and what happened to each object of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub output: String,
    pub outcomes: Vec<Outcome>,
}

/// What `inject` did with one object (a `kind: List` counts each item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The line of the input where the object starts.
    pub line: usize,
    pub action: Action,
}

impl Outcome {
    /// Whether the object's text was changed (injected or upgraded).
    pub fn changed(&self) -> bool {
        matches!(self.action, Action::Injected | Action::Upgraded { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Injected,
    /// The sidecar inject had added was rewritten (new image, options or
    /// podpath version).
    Upgraded {
        from_version: String,
        from_image: Option<String>,
        to_image: String,
    },
    Skipped(Skip),
}

/// Why an object was left as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// `hostNetwork: true`: podpath would capture the node's traffic.
    HostNetwork,
    /// `hostNetwork` holds something other than a boolean.
    HostNetworkNotBool {
        value: String,
    },
    OptedOut {
        at: &'static str,
    },
    /// Opted out, but a `podpath` container is there already: inject only
    /// adds, so it stays until removed by hand.
    OptedOutWithSidecar {
        at: &'static str,
    },
    /// `podpath.io/inject` holds neither `enabled` nor `disabled`.
    UnknownChoice {
        value: String,
        at: &'static str,
    },
    /// [`Selection::OptedIn`] and no `podpath.io/inject: enabled`.
    NotOptedIn,
    /// The sidecar inject wrote is there and matches what it would write now.
    AlreadyCurrent,
    /// A container named `podpath` that inject did not add (no
    /// [`VERSION_ANNOTATION`]): a kustomize component's or a hand-written one.
    NotInjectedByPodpath,
    /// An object with containers whose kind inject does not know (a custom
    /// resource such as an Argo Rollout, or a removed API version).
    UnknownKind {
        api_version: String,
        kind: String,
    },
    /// A workload kind without a pod spec where one belongs (a patch).
    NoPodSpec {
        path: String,
    },
    /// An object without containers: Service, ConfigMap, RBAC, CRD, ...
    NoPodTemplate,
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::HostNetwork => f.write_str(
                "hostNetwork is true: podpath would capture the node's traffic, not the pod's",
            ),
            Skip::HostNetworkNotBool { value } => write!(
                f,
                "hostNetwork is {value:?}, not a boolean (the API server would reject the object)"
            ),
            Skip::OptedOut { at } => write!(f, "opted out ({INJECT_KEY}: disabled in {at})"),
            Skip::OptedOutWithSidecar { at } => write!(
                f,
                "opted out ({INJECT_KEY}: disabled in {at}), but it has a podpath container \
                 already: inject does not remove it, delete it by hand"
            ),
            Skip::UnknownChoice { value, at } => write!(
                f,
                "{INJECT_KEY} is {value:?} in {at}; only enabled and disabled are understood"
            ),
            Skip::NotOptedIn => write!(
                f,
                "not opted in (--opt-in, and no {INJECT_KEY}: enabled label or annotation)"
            ),
            Skip::AlreadyCurrent => write!(
                f,
                "already has podpath {VERSION}'s sidecar with this image and these options"
            ),
            Skip::NotInjectedByPodpath => write!(
                f,
                "has a container named podpath that inject did not add (no {VERSION_ANNOTATION} \
                 annotation on the pod template): left as it is"
            ),
            Skip::UnknownKind { api_version, kind } => write!(
                f,
                "{api_version} {kind} is not a workload kind inject knows: its containers are left \
                 as they are"
            ),
            Skip::NoPodSpec { path } => write!(f, "no pod spec at {path}"),
            Skip::NoPodTemplate => f.write_str("no pod template"),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match &self.action {
            Action::Injected => "injected",
            Action::Upgraded { .. } => "upgraded",
            Action::Skipped(_) => "skipped",
        };
        write!(f, "{verb} {} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        write!(f, "{} (line {})", self.name, self.line)?;
        match &self.action {
            Action::Injected => Ok(()),
            Action::Upgraded {
                from_version,
                from_image,
                to_image,
            } => {
                let mut changes = Vec::new();
                if from_version != VERSION {
                    changes.push(format!("podpath {from_version} → {VERSION}"));
                }
                match from_image {
                    Some(from) if from != to_image => {
                        changes.push(format!("image {from} → {to_image}"));
                    }
                    _ => {}
                }
                if changes.is_empty() {
                    changes.push("sidecar options changed".to_owned());
                }
                write!(f, ": {}", changes.join(", "))
            }
            Action::Skipped(skip) => write!(f, ": {skip}"),
        }
    }
}

/// Adds the podpath sidecar to every Pod, Deployment, StatefulSet, DaemonSet,
/// ReplicaSet, ReplicationController, Job and CronJob in `input` (any number
/// of `---`-separated documents, and `kind: List` items) that is not opted
/// out, returning the edited text. See [`inject_report`].
pub fn inject(input: &str, opts: &InjectOptions) -> Result<String, InjectError> {
    inject_report(input, opts, Selection::default()).map(|i| i.output)
}

/// [`inject`], choosing workloads by `selection`, with what happened to each
/// object. A workload is skipped when its pod uses the host's network, when
/// it is opted out (`podpath.io/inject: disabled` as a label or annotation of
/// the object or of its pod template), or when its sidecar is current. A
/// sidecar inject added earlier (the pod template carries
/// `podpath.io/injected-version`) is rewritten in place when the image,
/// options or podpath version changed; the template's annotation records the
/// version.
pub fn inject_report(
    input: &str,
    opts: &InjectOptions,
    selection: Selection,
) -> Result<Injection, InjectError> {
    sidecar::validate(opts)?;
    refuse_lone_carriage_returns(input)?;
    let docs = tree::parse_stream(input)?;
    let source = Source::new(input);
    let (edits, outcomes) = visit(&source, &docs, opts, selection)?;
    let output = source.apply(edits);
    if outcomes.iter().any(Outcome::changed) {
        verify(&output, opts, selection)?;
    }
    Ok(Injection { output, outcomes })
}

/// YAML reads a carriage return not followed by a line feed as a line
/// break; edits are placed by lines that end in `\n` (`\r\n` kept as it
/// is). Such a file would be edited at the wrong place, so it is refused.
fn refuse_lone_carriage_returns(input: &str) -> Result<(), InjectError> {
    let bytes = input.as_bytes();
    match bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
    {
        Some((i, _)) => Err(InjectError::Yaml {
            line: bytes[..i].iter().filter(|&&b| b == b'\n').count() + 1,
            column: i - bytes[..i].iter().rposition(|&b| b == b'\n').map_or(0, |n| n + 1) + 1,
            message: "a carriage return without a line feed (old Mac line ending): convert the file to \\n or \\r\\n line endings".into(),
        }),
        None => Ok(()),
    }
}

/// Every object of the parsed stream: the edits to make and what each
/// object gets.
fn visit(
    source: &Source<'_>,
    docs: &[Option<Node>],
    opts: &InjectOptions,
    selection: Selection,
) -> Result<(Vec<Edit>, Vec<Outcome>), InjectError> {
    let mut run = Run {
        source,
        opts,
        selection,
        edits: Vec::new(),
        outcomes: Vec::new(),
    };
    // An empty document (`---` with nothing after it) is no object.
    for root in docs.iter().flatten().filter(|root| !root.is_null()) {
        run.visit_object(root)?;
    }
    Ok((run.edits, run.outcomes))
}

/// Edits are made in the text, guided by the parser's spans; a layout the
/// spans describe wrongly (a complex `? key` right after the containers
/// list, say) could put the sidecar outside the list it was meant for.
/// What was written must read back as current: a second pass that would
/// change anything means the first one went wrong, and the object is
/// refused instead of being written out broken.
fn verify(output: &str, opts: &InjectOptions, selection: Selection) -> Result<(), InjectError> {
    let docs = tree::parse_stream(output).map_err(|e| InjectError::Unsupported {
        kind: String::new(),
        name: String::new(),
        line: 0,
        reason: match e {
            InjectError::TooDeep { .. } => "the injected output nests too deep",
            _ => "the injected output is not valid YAML (a layout inject cannot edit)",
        },
    })?;
    let (_, outcomes) = visit(&Source::new(output), &docs, opts, selection)?;
    match outcomes.into_iter().find(Outcome::changed)
    {
        Some(o) => Err(InjectError::Unsupported {
            kind: o.kind,
            name: o.name,
            line: o.line,
            reason: "a layout inject cannot edit reliably (the sidecar would not read back where it was written)",
        }),
        None => Ok(()),
    }
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

/// True when `node` holds a `containers` sequence at any depth (bounded by
/// the tree's own depth limit). A CRD's schema has a `containers` key too,
/// but its value is a mapping.
fn has_containers(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Map(entries) => entries.iter().any(|(k, v)| {
            (k.as_str() == Some("containers") && v.items().is_some()) || has_containers(v)
        }),
        NodeKind::Seq(items) => items.iter().any(has_containers),
        _ => false,
    }
}

/// The `podpath` container of `list`, if any.
fn podpath_in(list: Option<&Node>) -> Option<&Node> {
    list.and_then(Node::items)?
        .iter()
        .find(|c| c.get("name").and_then(Node::as_str) == Some(CONTAINER_NAME))
}

/// What the `podpath.io/inject` labels and annotations of a workload say.
enum Choice {
    Unset,
    Enabled,
    Disabled(&'static str),
    Unknown(String, &'static str),
}

fn choice(object_meta: Option<&Node>, template_meta: Option<&Node>) -> Choice {
    // A Pod is its own template: read its metadata once.
    let template_meta = template_meta.filter(|t| !object_meta.is_some_and(|o| std::ptr::eq(*t, o)));
    let places = [
        (object_meta, "labels", "the object's labels"),
        (object_meta, "annotations", "the object's annotations"),
        (template_meta, "labels", "the pod template's labels"),
        (
            template_meta,
            "annotations",
            "the pod template's annotations",
        ),
    ];
    let mut found = Choice::Unset;
    for (meta, field, at) in places {
        let Some(value) = meta
            .and_then(|m| m.get(field))
            .and_then(|f| f.get(INJECT_KEY))
        else {
            continue;
        };
        // An opt-out anywhere wins: inject never adds what someone declined.
        match value.as_str() {
            Some("disabled") => return Choice::Disabled(at),
            Some("enabled") => {
                if matches!(found, Choice::Unset) {
                    found = Choice::Enabled;
                }
            }
            other => {
                if !matches!(found, Choice::Unknown(..)) {
                    found = Choice::Unknown(other.unwrap_or("(not a scalar)").to_owned(), at);
                }
            }
        }
    }
    found
}

/// One pass over the documents: the edits to make and the outcomes to report.
struct Run<'s, 'o> {
    source: &'s Source<'s>,
    opts: &'o InjectOptions,
    selection: Selection,
    edits: Vec<Edit>,
    outcomes: Vec<Outcome>,
}

impl Run<'_, '_> {
    fn visit_object(&mut self, object: &Node) -> Result<(), InjectError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Node::as_str)
            .unwrap_or("");
        let kind = object.get("kind").and_then(Node::as_str).unwrap_or("");
        if api_version == "v1" && kind == "List" {
            for item in object.get("items").and_then(Node::items).unwrap_or(&[]) {
                self.visit_object(item)?;
            }
            return Ok(());
        }
        let metadata = object.get("metadata");
        let target = Target {
            kind,
            name: metadata
                .and_then(|m| m.get("name"))
                .and_then(Node::as_str)
                .unwrap_or(""),
            line: object.start.line,
        };
        let action = match pod_spec_path(api_version, kind) {
            None if has_containers(object) => Action::Skipped(Skip::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            }),
            None => Action::Skipped(Skip::NoPodTemplate),
            Some(path) => {
                // The template is the map holding the pod spec: its metadata is
                // the pods' metadata.
                let mut template = Some(object);
                let mut spec = Some(object);
                for key in path {
                    template = spec;
                    spec = spec.and_then(|node| node.get(key));
                }
                match (template, spec) {
                    (Some(template), Some(spec)) if matches!(spec.kind, NodeKind::Map(_)) => {
                        self.workload(object, template, spec, &target)?
                    }
                    // A fragment without a pod spec (a kustomize patch, say)
                    // has nothing to inject into.
                    _ => Action::Skipped(Skip::NoPodSpec {
                        path: path.join("."),
                    }),
                }
            }
        };
        self.outcomes.push(Outcome {
            kind: kind.to_owned(),
            namespace: metadata
                .and_then(|m| m.get("namespace"))
                .and_then(Node::as_str)
                .map(str::to_owned),
            name: target.name.to_owned(),
            line: target.line,
            action,
        });
        Ok(())
    }

    /// Decides for one pod spec, and adds the edits that carry it out.
    fn workload(
        &mut self,
        object: &Node,
        template: &Node,
        spec: &Node,
        target: &Target<'_>,
    ) -> Result<Action, InjectError> {
        if let Some(host_network) = spec.get("hostNetwork") {
            match host_network.as_bool() {
                Some(true) => return Ok(Action::Skipped(Skip::HostNetwork)),
                Some(false) => {}
                None if host_network.is_null() => {}
                None => {
                    return Ok(Action::Skipped(Skip::HostNetworkNotBool {
                        value: host_network.as_str().unwrap_or("(not a scalar)").to_owned(),
                    }))
                }
            }
        }
        let template_meta = template.get("metadata");
        let init = spec.entry("initContainers");
        let containers = spec.entry("containers");
        let existing = podpath_in(init.map(|(_, v)| v))
            .map(|c| (c, true))
            .or_else(|| podpath_in(containers.map(|(_, v)| v)).map(|c| (c, false)));
        match choice(object.get("metadata"), template_meta) {
            Choice::Disabled(at) if existing.is_some() => {
                return Ok(Action::Skipped(Skip::OptedOutWithSidecar { at }))
            }
            Choice::Disabled(at) => return Ok(Action::Skipped(Skip::OptedOut { at })),
            Choice::Unknown(value, at) => {
                return Ok(Action::Skipped(Skip::UnknownChoice { value, at }))
            }
            Choice::Unset if self.selection == Selection::OptedIn => {
                return Ok(Action::Skipped(Skip::NotOptedIn))
            }
            Choice::Unset | Choice::Enabled => {}
        }
        let recorded = template_meta
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(VERSION_ANNOTATION));
        if let Some((container, native_sidecar)) = existing {
            let Some(from_version) = recorded.and_then(Node::as_str) else {
                return Ok(Action::Skipped(Skip::NotInjectedByPodpath));
            };
            // An upgrade keeps the sidecar where it is: moving it between
            // initContainers and containers is not inject's call.
            let opts = InjectOptions {
                native_sidecar,
                ..self.opts.clone()
            };
            if from_version == VERSION && covers(container, &sidecar_node(&opts)?) {
                return Ok(Action::Skipped(Skip::AlreadyCurrent));
            }
            self.replace_container(container, &opts, target)?;
            self.record_version(template, target)?;
            return Ok(Action::Upgraded {
                from_version: from_version.to_owned(),
                from_image: container
                    .get("image")
                    .and_then(Node::as_str)
                    .map(str::to_owned),
                to_image: opts.image,
            });
        }
        let Some((containers_key, containers)) = containers else {
            return Err(target.unsupported("the pod spec has no containers"));
        };
        if self.opts.native_sidecar {
            // First among the init containers, so podpath already captures while
            // the other init containers run.
            match init {
                Some((key, list)) => {
                    prepend_to(key, list, target, self.source, self.opts, &mut self.edits)?
                }
                None => {
                    let indent = self.source.indent_of(containers_key.start).ok_or_else(|| {
                        target.unsupported("the pod spec is written in flow style")
                    })?;
                    let mut text = self.source.line(indent, "initContainers:");
                    text.push_str(&sidecar::container_lines(
                        self.opts,
                        indent,
                        self.source.eol,
                    ));
                    self.edits.push(Edit::insert(
                        self.source.line_start(containers_key.start.line),
                        text,
                    ));
                }
            }
        } else {
            append_to(containers, target, self.source, self.opts, &mut self.edits)?;
        }
        self.record_version(template, target)?;
        Ok(Action::Injected)
    }

    /// Rewrites the block sequence item `container` as the sidecar `opts`
    /// describes, in place.
    fn replace_container(
        &mut self,
        container: &Node,
        opts: &InjectOptions,
        target: &Target<'_>,
    ) -> Result<(), InjectError> {
        let source = self.source;
        let (Some(dash), Some(last)) = (source.dash_of(container.start), container.last) else {
            return Err(target.unsupported("the podpath container is not a block sequence item"));
        };
        let end = source.offset(last);
        let mut text = sidecar::container_lines(opts, dash, source.eol);
        // What followed the old item on its last line (a comment, the line
        // ending) stays.
        if !source.text.get(..end).is_some_and(|t| t.ends_with('\n')) {
            text.truncate(text.len() - source.eol.len());
        }
        self.edits.push(Edit {
            start: source.line_start(container.start.line),
            end,
            text,
        });
        Ok(())
    }

    /// Sets `podpath.io/injected-version` in the metadata of `template` (the
    /// map holding the pod spec), adding `metadata:` and `annotations:` where
    /// they are missing.
    fn record_version(&mut self, template: &Node, target: &Target<'_>) -> Result<(), InjectError> {
        let quoted = format!("\"{VERSION}\"");
        let Some((metadata_key, metadata)) = template.entry("metadata") else {
            return self.add_entry(
                template,
                &["metadata", "annotations", VERSION_ANNOTATION],
                &quoted,
                target,
            );
        };
        if metadata.is_null() {
            return self.fill_null(
                metadata_key,
                metadata,
                &["annotations", VERSION_ANNOTATION],
                &quoted,
                target,
            );
        }
        let Some((annotations_key, annotations)) = metadata.entry("annotations") else {
            return self.add_entry(
                metadata,
                &["annotations", VERSION_ANNOTATION],
                &quoted,
                target,
            );
        };
        if annotations.is_null() {
            // `annotations:` left empty, as Helm templates often render it.
            return self.fill_null(
                annotations_key,
                annotations,
                &[VERSION_ANNOTATION],
                &quoted,
                target,
            );
        }
        match annotations.entry(VERSION_ANNOTATION) {
            None => self.add_entry(annotations, &[VERSION_ANNOTATION], &quoted, target),
            Some((_, value)) if value.as_str() == Some(VERSION) => Ok(()),
            Some((key, value)) => {
                let edit = match (value.last, key.last) {
                    (Some(last), _) => Edit {
                        start: self.source.offset(value.start),
                        end: self.source.offset(last),
                        text: quoted,
                    },
                    // An empty value: the version goes after the key's `:`.
                    (None, Some(key_end)) => {
                        let colon = self.source.offset(key_end);
                        if self.source.text.get(colon..=colon) != Some(":") {
                            return Err(target.unsupported("the recorded version cannot be edited"));
                        }
                        Edit::insert(colon + 1, format!(" {quoted}"))
                    }
                    (None, None) => {
                        return Err(target.unsupported("the recorded version cannot be edited"))
                    }
                };
                self.edits.push(edit);
                Ok(())
            }
        }
    }

    /// Gives the null value of block mapping key `key` (`annotations:` with
    /// nothing after it, or `~`, or `null`) the nested entries `keys`, on the
    /// lines after the key.
    fn fill_null(
        &mut self,
        key: &Node,
        value: &Node,
        keys: &[&str],
        leaf: &str,
        target: &Target<'_>,
    ) -> Result<(), InjectError> {
        let source = self.source;
        let indent = source
            .indent_of(key.start)
            .ok_or_else(|| target.unsupported("the pod template's metadata cannot be edited"))?;
        if let Some(last) = value.last {
            if last.line != key.start.line {
                return Err(target.unsupported("the pod template's metadata cannot be edited"));
            }
            self.edits.push(source.removal(value.start, last));
        }
        let at = source.line_start(key.start.line + 1);
        let mut text = String::new();
        if !source.text.get(..at).is_some_and(|t| t.ends_with('\n')) {
            text.push_str(source.eol);
        }
        for (depth, k) in keys.iter().enumerate() {
            let content = if depth + 1 == keys.len() {
                format!("{k}: {leaf}")
            } else {
                format!("{k}:")
            };
            text.push_str(&source.line(indent + 2 * (depth + 1), &content));
        }
        self.edits.push(Edit::insert(at, text));
        Ok(())
    }

    /// Adds `keys[0]: ... keys[n-1]: value` (nested maps) to the mapping
    /// `map`: as lines before its first key when it is a block mapping, or
    /// before its `}` when it is a flow mapping.
    fn add_entry(
        &mut self,
        map: &Node,
        keys: &[&str],
        value: &str,
        target: &Target<'_>,
    ) -> Result<(), InjectError> {
        let source = self.source;
        let entries = map
            .entries()
            .ok_or_else(|| target.unsupported("the pod template's metadata is not a mapping"))?;
        // A block mapping: any key that starts its line gives the indentation.
        if let Some(key) = entries
            .iter()
            .map(|(k, _)| k)
            .find(|k| source.indent_of(k.start).is_some())
        {
            let indent = key.start.col;
            let mut text = String::new();
            for (depth, k) in keys.iter().enumerate() {
                let content = if depth + 1 == keys.len() {
                    format!("{k}: {value}")
                } else {
                    format!("{k}:")
                };
                text.push_str(&source.line(indent + 2 * depth, &content));
            }
            self.edits
                .push(Edit::insert(source.line_start(key.start.line), text));
            return Ok(());
        }
        // A flow mapping ends with the `}` just before its end.
        let close = map
            .last
            .map(|p| source.offset(p))
            .and_then(|end| end.checked_sub(1))
            .filter(|&at| source.text.get(at..at + 1) == Some("}"))
            .ok_or_else(|| target.unsupported("the pod template's metadata cannot be edited"))?;
        let mut text = String::from(if entries.is_empty() { "" } else { ", " });
        for k in &keys[..keys.len() - 1] {
            text.push_str(k);
            text.push_str(": {");
        }
        text.push_str(keys[keys.len() - 1]);
        text.push_str(": ");
        text.push_str(value);
        text.push_str(&"}".repeat(keys.len() - 1));
        self.edits.push(Edit::insert(close, text));
        Ok(())
    }
}

/// The sidecar container `opts` describes, as a tree.
fn sidecar_node(opts: &InjectOptions) -> Result<Node, InjectError> {
    let text = sidecar::container_lines(opts, 0, "\n");
    tree::parse_stream(&text)?
        .into_iter()
        .flatten()
        .next()
        .and_then(|list| match list.kind {
            NodeKind::Seq(items) => items.into_iter().next(),
            _ => None,
        })
        .ok_or(InjectError::Yaml {
            line: 0,
            column: 0,
            message: "the sidecar template is not a one-item sequence".to_owned(),
        })
}

/// True when `have` holds everything `want` does: the same scalars (quoting
/// aside), sequences of the same length item by item, and every key of each
/// mapping. Extra keys are allowed, so a sidecar read back from the cluster
/// (`kubectl get -o yaml`, with defaults such as `imagePullPolicy` or a
/// probe's `timeoutSeconds` filled in) still counts as current.
fn covers(have: &Node, want: &Node) -> bool {
    match (&have.kind, &want.kind) {
        (NodeKind::Scalar { value: a, .. }, NodeKind::Scalar { value: b, .. }) => a == b,
        (NodeKind::Seq(a), NodeKind::Seq(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| covers(x, y))
        }
        (NodeKind::Map(_), NodeKind::Map(b)) => b.iter().all(|(k, v)| {
            k.as_str()
                .and_then(|k| have.get(k))
                .is_some_and(|h| covers(h, v))
        }),
        _ => false,
    }
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
        edits.push(source.removal(value.start, last));
    }
    let at = source.line_start(key.start.line + 1);
    let mut text = String::new();
    if !source.text.get(..at).is_some_and(|t| t.ends_with('\n')) {
        text.push_str(source.eol);
    }
    text.push_str(&sidecar::container_lines(opts, key_indent, source.eol));
    edits.push(Edit::insert(at, text));
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

    /// Removes the scalar or flow collection from `start` to `last` on one
    /// line, and the blanks after it: a comment after it stays
    /// (`initContainers: # note`), and without one the line keeps no
    /// trailing blanks.
    fn removal(&self, start: Pos, last: Pos) -> Edit {
        let mut start = self.offset(start);
        let mut end = self.offset(last);
        let line_end = self.line_start(last.line + 1);
        let rest = self.text.get(end..line_end).unwrap_or("");
        end += rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if rest.trim().is_empty() {
            let before = self.text.get(..start).unwrap_or("");
            start = before.trim_end_matches([' ', '\t']).len();
        }
        Edit {
            start,
            end,
            text: String::new(),
        }
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
