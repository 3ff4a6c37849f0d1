//! The processed syntax tree the evaluator walks.
//!
//! The parser already performs jsonata-js's post-parse "processAST" step: `a.b.c` becomes a
//! single [`Kind::Path`] of steps, bare names become one-step paths, predicates attach to the
//! node (or path step) they follow, and `{...}` after an expression becomes its `group`.

use std::sync::Arc;

use crate::signature::Signature;

#[derive(Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Character offset of the token that produced this node.
    pub position: usize,
    /// `[...]` filters applied to this node's result, in order.
    pub predicates: Vec<Node>,
    /// `{k: v}` grouping applied to this node's result.
    pub group: Option<Box<ObjectPairs>>,
    /// Set by an empty predicate `a[]`: singleton results stay arrays.
    pub keep_array: bool,
    /// `@$v` / `#$i` on a path step: the path is evaluated as a stream of tuples.
    pub binding: Option<Box<StepBinding>>,
}

/// Variables a path step binds for the rest of the path.
#[derive(Debug, Default)]
pub(crate) struct StepBinding {
    /// `step@$v`: each result is bound to `$v` while the context stays the step's input.
    pub focus: Option<String>,
    /// `step#$i`: the position of each result within its input item's results.
    pub index: Option<String>,
    /// `step[..]#$i`: `(n, $i)` binds the position after the first `n` predicates.
    pub index_stage: Option<(usize, String)>,
    /// Labels of `%` operators that refer to this step's input context.
    pub ancestors: Vec<String>,
}

pub(crate) type ObjectPairs = Vec<(Node, Node)>;

#[derive(Debug)]
pub(crate) struct SortTerm {
    pub expr: Node,
    pub descending: bool,
}

#[derive(Debug)]
pub(crate) struct LambdaDef {
    pub params: Vec<String>,
    pub body: Node,
    pub signature: Option<Signature>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Str(Arc<str>),
    Num(f64),
    Bool(bool),
    Null,
    /// A field lookup (only appears as a path step).
    Name(String),
    /// `$name`; `""` is the context `$`, `"$"` is the root `$$`.
    Var(String),
    Wildcard,
    Descendant,
    /// `%`, resolved to a label bound by an earlier path step (see `ancestry.rs`).
    Parent(String),
    Regex(Arc<regex::Regex>),
    Path {
        steps: Vec<Node>,
        keep_singleton: bool,
    },
    Binary {
        op: &'static str,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    Negate(Box<Node>),
    Array {
        items: Vec<Node>,
        /// The constructor is the first or last step of a path: its result is not flattened.
        cons: bool,
    },
    Object(ObjectPairs),
    Condition {
        condition: Box<Node>,
        then: Box<Node>,
        otherwise: Option<Box<Node>>,
    },
    Block(Vec<Node>),
    Bind {
        name: String,
        value: Box<Node>,
    },
    Lambda(Arc<LambdaDef>),
    Call {
        func: Box<Node>,
        args: Vec<Node>,
    },
    Partial {
        func: Box<Node>,
        args: Vec<Node>,
    },
    Placeholder,
    Apply {
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    /// `^(...)` as a path step: sorts the whole input sequence.
    Sort(Vec<SortTerm>),
    Transform(Arc<TransformDef>),
}

/// `| pattern | update, delete |`
#[derive(Debug)]
pub(crate) struct TransformDef {
    pub pattern: Node,
    pub update: Node,
    pub delete: Option<Node>,
}

impl Node {
    pub fn new(kind: Kind, position: usize) -> Node {
        Node {
            kind,
            position,
            predicates: Vec::new(),
            group: None,
            keep_array: false,
            binding: None,
        }
    }

    /// The name a call site uses for this function expression (for error messages).
    pub fn function_name(&self) -> String {
        match &self.kind {
            Kind::Var(name) => name.clone(),
            Kind::Path { steps, .. } => steps.first().map(Node::function_name).unwrap_or_default(),
            Kind::Name(name) => name.clone(),
            _ => String::new(),
        }
    }
}
