//! The dashboard's drawing of a plan: its nodes (source, transforms,
//! reserved streams, sinks) and the streams between them.

use crate::plan::{Operation, Plan};
use serde::Serialize;
use std::time::Duration;

/// The dataflow: sources, transforms and sinks, joined by named streams.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// Source, transforms, reserved streams, sinks.
    pub nodes: Vec<Node>,
    /// Which stream flows from which node to which.
    pub edges: Vec<Edge>,
}

/// A node of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Unique: `source`, a transform's name, `late`, `dead_letter`, or
    /// `sink:N`.
    pub id: String,
    /// `source`, `transform`, `reserved` or `sink`.
    pub kind: String,
    /// What it is, in a few words.
    pub label: String,
    /// The stream it produces, if any.
    pub output: Option<String>,
    /// Its column (distance from the source), for drawing.
    pub depth: usize,
}

/// An edge of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// The producing node.
    pub from: String,
    /// The consuming node.
    pub to: String,
    /// The stream it carries.
    pub stream: String,
}

/// The dataflow of `plan`.
pub(super) fn graph_of(plan: &Plan) -> Graph {
    let mut nodes = vec![Node {
        id: "source".into(),
        kind: "source".into(),
        label: source_label(plan),
        output: Some("source".into()),
        depth: 0,
    }];
    let mut edges = Vec::new();
    let depth_of = |nodes: &[Node], stream: &str| {
        nodes
            .iter()
            .find(|n| n.output.as_deref() == Some(stream))
            .map_or(0, |n| n.depth)
    };
    for t in &plan.transforms {
        let depth = t.inputs().map(|i| depth_of(&nodes, i)).max().unwrap_or(0) + 1;
        let what = match &t.operation {
            Operation::Window(w) => window_label(&w.kind),
            _ => t.kind.clone(),
        };
        nodes.push(Node {
            id: t.name.clone(),
            kind: "transform".into(),
            label: what,
            output: Some(t.name.clone()),
            depth,
        });
        for input in t.inputs() {
            edges.push(Edge {
                from: producer(&nodes, input),
                to: t.name.clone(),
                stream: input.to_string(),
            });
        }
    }
    let deepest = nodes.iter().map(|n| n.depth).max().unwrap_or(0);
    for reserved in ["late", "dead_letter"] {
        if plan.sinks.iter().any(|s| s.from == reserved) {
            nodes.push(Node {
                id: reserved.into(),
                kind: "reserved".into(),
                label: "reserved stream".into(),
                output: Some(reserved.into()),
                depth: deepest,
            });
        }
    }
    for (i, sink) in plan.sinks.iter().enumerate() {
        let id = format!("sink:{i}");
        nodes.push(Node {
            id: id.clone(),
            kind: "sink".into(),
            label: sink.label.clone(),
            output: None,
            depth: deepest + 1,
        });
        edges.push(Edge {
            from: producer(&nodes, &sink.from),
            to: id,
            stream: sink.from.clone(),
        });
    }
    Graph { nodes, edges }
}

fn window_label(kind: &crate::window::WindowKind) -> String {
    use crate::window::WindowKind;
    let time = |ms: i64| {
        humantime::format_duration(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
            .to_string()
    };
    match kind {
        WindowKind::Tumbling { size } => format!("tumbling {} window", time(*size)),
        WindowKind::Sliding { size, slide } => {
            format!("sliding {} window every {}", time(*size), time(*slide))
        }
        WindowKind::Session { gap } => format!("session window, gap {}", time(*gap)),
        WindowKind::Count { size } => format!("count window of {size}"),
        WindowKind::Running => "running aggregate".to_string(),
    }
}

fn producer(nodes: &[Node], stream: &str) -> String {
    nodes
        .iter()
        .find(|n| n.output.as_deref() == Some(stream))
        .map_or_else(|| stream.to_string(), |n| n.id.clone())
}

fn source_label(plan: &Plan) -> String {
    plan.source.connector.label()
}
