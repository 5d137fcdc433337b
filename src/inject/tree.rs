//! A positioned YAML tree built from saphyr-parser events.
//!
//! `inject` edits the input text in place instead of re-serialising a parsed
//! value: a round trip through a serde YAML value turns `defaultMode: 0644`
//! into the string `'0644'` and `value: "yes"` into a bare `yes` (a boolean to
//! the YAML 1.1 reader inside kubectl). The tree therefore keeps, for every
//! node, where it starts and where its last character ends, so edits can be
//! placed between lines of the original text.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScanError, Span, Tag};

use super::InjectError;

/// Deeper nesting is refused: Kubernetes objects are a dozen levels deep, and
/// the builder recurses once per level.
pub(crate) const MAX_DEPTH: usize = 64;

/// A position in the input: `line` counts from 1, `col` counts characters
/// from 0 (saphyr's convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col(),
        }
    }
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    /// `plain` is false for quoted and block scalars: a quoted `"null"` is a
    /// string, a plain `null` is not. `tag` is the explicit tag, if any:
    /// `Some("bool")` for `!!bool`, `Some("!x")` for an application tag.
    Scalar {
        value: String,
        plain: bool,
        tag: Option<String>,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Alias,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// Where the node's first token starts. For an item of an indented block
    /// sequence saphyr reports the item content, not its `-`.
    pub start: Pos,
    /// The furthest end of any token inside the node; unlike the end event of a
    /// block collection, which saphyr places at the next token of the stream,
    /// this never runs past trailing comments or blank lines. `None` when the
    /// node has no visible token (an empty plain scalar).
    pub last: Option<Pos>,
    /// Where saphyr reports the node's end: for a block collection, the start
    /// of the next token of the stream, past trailing comments, blank lines
    /// and empty items.
    pub end: Pos,
}

impl Node {
    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node under `key` when this node is a mapping.
    /// With a duplicated key the last one counts, as in go-yaml v2, which
    /// reads manifests for kubectl and the API server (sigs.k8s.io/yaml).
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// True for an empty plain scalar or a plain `null` / `~` (the same in
    /// YAML 1.1 and 1.2).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true, tag: None }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The boolean Kubernetes reads in this scalar, or `None` when it is not
    /// one. kubectl and the API server convert YAML to JSON with
    /// sigs.k8s.io/yaml, which resolves scalars with go-yaml v2's YAML 1.1
    /// table (`resolve.go`): `y`, `yes`, `on`, `true` and their capitalised
    /// and upper-case forms are true, `n`, `no`, `off`, `false` false, for a
    /// plain scalar or one tagged `!!bool`; a quoted or `!!str` scalar stays
    /// a string.
    pub fn as_bool(&self) -> Option<bool> {
        let NodeKind::Scalar { value, plain, tag } = &self.kind else {
            return None;
        };
        let resolved = match tag.as_deref() {
            None => *plain,
            Some(tag) => tag == "bool",
        };
        if !resolved {
            return None;
        }
        match value.as_str() {
            "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                Some(true)
            }
            "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off"
            | "OFF" => Some(false),
            _ => None,
        }
    }

    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn items(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }
}

/// Parses every document of a YAML stream. A document without content (only
/// comments, or an empty `---`) yields `None`.
pub(crate) fn parse_stream(input: &str) -> Result<Vec<Option<Node>>, InjectError> {
    let mut events = Events {
        parser: Parser::new_from_str(input),
        scalar_anchors: HashMap::new(),
        alias_budget: ALIAS_BUDGET,
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = events.next()?;
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(docs),
            Event::DocumentStart(_) => {
                let (first, first_span) = events.next()?;
                if matches!(first, Event::DocumentEnd) {
                    docs.push(None);
                    continue;
                }
                let root = build(&mut events, first, first_span, 0)?;
                docs.push(Some(root));
            }
            _ => {
                return Err(InjectError::Yaml {
                    line: span.start.line(),
                    column: span.start.col() + 1,
                    message: "unexpected event outside a document".to_owned(),
                })
            }
        }
    }
}

struct Events<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// The scalars that carry an anchor, so that an alias to one reads as the
    /// scalar (go-yaml resolves aliases too). Aliases of collections stay
    /// [`NodeKind::Alias`]: nothing inject decides on is a collection alias.
    scalar_anchors: HashMap<usize, (String, bool, Option<String>)>,
    /// Bytes that resolved aliases may still copy: without a budget, many
    /// aliases of one long scalar would cost memory quadratic in the input.
    alias_budget: usize,
}

impl<'a> Events<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), InjectError> {
        match self.parser.next_event() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => Err(scan_error(&e)),
            None => Err(InjectError::Yaml {
                line: 0,
                column: 0,
                message: "unexpected end of the YAML stream".to_owned(),
            }),
        }
    }
}

fn scan_error(e: &ScanError) -> InjectError {
    InjectError::Yaml {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_owned(),
    }
}

/// Anchored scalars remembered per stream; past this many, aliases to further
/// ones stay unresolved (bounded memory on hostile input).
const MAX_SCALAR_ANCHORS: usize = 4096;

/// Bytes of scalar text that aliases may copy in one stream.
const ALIAS_BUDGET: usize = 1 << 20;

/// `bool` for the core schema's `!!bool`, the tag as written otherwise.
fn tag_name(tag: &Tag) -> String {
    if tag.is_yaml_core_schema() {
        tag.suffix.clone()
    } else {
        tag.to_string()
    }
}

/// The end of a token that occupies at least one character.
fn visible_end(span: Span) -> Option<Pos> {
    (span.end.index() > span.start.index()).then(|| Pos::from(span.end))
}

/// The end of a flow collection's `]` or `}`. saphyr stretches the end
/// event's span over a comment that follows on the line (`[]  # note` ends
/// after `note`), but the bracket is one character from where the span starts.
fn closing_end(span: Span) -> Option<Pos> {
    (span.end.index() > span.start.index()).then(|| Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    })
}

/// Builds the node that starts with `event`, consuming events up to and
/// including its end event.
fn build<'a>(
    events: &mut Events<'a>,
    event: Event<'a>,
    span: Span,
    depth: usize,
) -> Result<Node, InjectError> {
    if depth > MAX_DEPTH {
        return Err(InjectError::TooDeep {
            line: span.start.line(),
            limit: MAX_DEPTH,
        });
    }
    let start = Pos::from(span.start);
    match event {
        Event::Scalar(value, style, anchor, tag) => {
            let value = value.into_owned();
            let plain = matches!(style, saphyr_parser::ScalarStyle::Plain);
            let tag = tag.as_deref().map(tag_name);
            if anchor != 0 && events.scalar_anchors.len() < MAX_SCALAR_ANCHORS {
                events
                    .scalar_anchors
                    .insert(anchor, (value.clone(), plain, tag.clone()));
            }
            Ok(Node {
                kind: NodeKind::Scalar { value, plain, tag },
                start,
                last: visible_end(span),
                end: Pos::from(span.end),
            })
        }
        Event::Alias(id) => {
            let kind = match events.scalar_anchors.get(&id) {
                Some((value, plain, tag)) if value.len() <= events.alias_budget => {
                    events.alias_budget -= value.len();
                    NodeKind::Scalar {
                        value: value.clone(),
                        plain: *plain,
                        tag: tag.clone(),
                    }
                }
                _ => NodeKind::Alias,
            };
            Ok(Node {
                kind,
                start,
                last: visible_end(span),
                end: Pos::from(span.end),
            })
        }
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            // A flow sequence's `[` and `]` are real tokens; a block
            // sequence's start and end events are zero-width, the end one
            // sitting on the next token of the stream.
            let mut last = visible_end(span);
            let end = loop {
                let (ev, sp) = events.next()?;
                if matches!(ev, Event::SequenceEnd) {
                    last = last.max(closing_end(sp));
                    break Pos::from(sp.end);
                }
                let item = build(events, ev, sp, depth + 1)?;
                last = last.max(item.last);
                items.push(item);
            };
            Ok(Node {
                kind: NodeKind::Seq(items),
                start,
                last,
                end,
            })
        }
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            let mut last = visible_end(span);
            let end = loop {
                let (ev, sp) = events.next()?;
                if matches!(ev, Event::MappingEnd) {
                    last = last.max(closing_end(sp));
                    break Pos::from(sp.end);
                }
                let key = build(events, ev, sp, depth + 1)?;
                let (vev, vsp) = events.next()?;
                let value = build(events, vev, vsp, depth + 1)?;
                last = last.max(key.last).max(value.last);
                entries.push((key, value));
            };
            Ok(Node {
                kind: NodeKind::Map(entries),
                start,
                last,
                end,
            })
        }
        other => Err(InjectError::Yaml {
            line: span.start.line(),
            column: span.start.col() + 1,
            message: format!("unexpected YAML event {other:?}"),
        }),
    }
}
