//! A positioned YAML tree built from saphyr-parser events.
//!
//! `inject` edits the input text in place instead of re-serialising a parsed
//! value: a round trip through a serde YAML value turns `defaultMode: 0644`
//! into the string `'0644'` and `value: "yes"` into a bare `yes` (a boolean to
//! the YAML 1.1 reader inside kubectl). The tree therefore keeps, for every
//! node, where it starts and where its last character ends, so edits can be
//! placed between lines of the original text.

use saphyr_parser::{Event, Marker, Parser, ScanError, Span};

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
    /// string, a plain `null` is not.
    Scalar {
        value: String,
        plain: bool,
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
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
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

    /// True for an empty plain scalar or a plain `null` / `~` (YAML 1.2 core
    /// schema null).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub fn is_true(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, plain: true }
            if matches!(value.as_str(), "true" | "True" | "TRUE"))
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

/// The end of a token that occupies at least one character.
fn visible_end(span: Span) -> Option<Pos> {
    (span.end.index() > span.start.index()).then(|| Pos::from(span.end))
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
        Event::Scalar(value, style, _, _) => Ok(Node {
            kind: NodeKind::Scalar {
                value: value.into_owned(),
                plain: matches!(style, saphyr_parser::ScalarStyle::Plain),
            },
            start,
            last: visible_end(span),
            end: Pos::from(span.end),
        }),
        Event::Alias(_) => Ok(Node {
            kind: NodeKind::Alias,
            start,
            last: visible_end(span),
            end: Pos::from(span.end),
        }),
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            // A flow sequence's `[` and `]` are real tokens; a block
            // sequence's start and end events are zero-width, the end one
            // sitting on the next token of the stream.
            let mut last = visible_end(span);
            let end = loop {
                let (ev, sp) = events.next()?;
                if matches!(ev, Event::SequenceEnd) {
                    last = last.max(visible_end(sp));
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
                    last = last.max(visible_end(sp));
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
