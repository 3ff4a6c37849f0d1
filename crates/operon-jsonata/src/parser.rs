//! Top-down operator-precedence (Pratt) parser, following jsonata-js's grammar and binding
//! powers, producing the processed tree of [`crate::ast`].

use std::sync::Arc;

use crate::ast::{Kind, LambdaDef, Node, ObjectPairs, SortTerm, TransformDef};
use crate::error::{Error, Result};
use crate::lexer::{Lexer, Token, TokenKind};
use crate::signature::Signature;

/// Maximum syntactic nesting; deeper input is rejected instead of exhausting the stack.
const MAX_NESTING: usize = 250;

pub(crate) fn parse(source: &str) -> Result<Node> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens,
        index: 0,
        source: source.chars().collect(),
        depth: 0,
        parents: 0,
    };
    let mut node = parser.expression(0)?;
    let tok = parser.current();
    if tok.kind != TokenKind::End {
        return Err(Error::at(
            "S0201",
            tok.position,
            format!("Syntax error: {:?}", token_text(&tok.kind)),
        ));
    }
    crate::ancestry::resolve(&mut node)?;
    Ok(node)
}

struct Lexed {
    token: Token,
    /// Character offset where the token starts.
    start: usize,
}

fn ends_operand(kind: &TokenKind) -> bool {
    match kind {
        TokenKind::Op(op) => matches!(*op, ")" | "]" | "}"),
        TokenKind::End => false,
        _ => true,
    }
}

fn tokenize(source: &str) -> Result<Vec<Lexed>> {
    let mut lexer = Lexer::new(source);
    let mut tokens: Vec<Lexed> = Vec::new();
    loop {
        let prefix = tokens.last().is_none_or(|t| !ends_operand(&t.token.kind));
        let token = lexer.next_token(prefix)?;
        let start = token.start;
        let end = token.kind == TokenKind::End;
        tokens.push(Lexed { token, start });
        if end {
            return Ok(tokens);
        }
    }
}

fn token_text(kind: &TokenKind) -> String {
    match kind {
        TokenKind::Op(op) => (*op).to_string(),
        TokenKind::Name(n) => n.clone(),
        TokenKind::Var(v) => format!("${v}"),
        TokenKind::Str(s) => format!("{s:?}"),
        TokenKind::Num(n) => crate::value::format_number(*n),
        TokenKind::Bool(b) => b.to_string(),
        TokenKind::Null => "null".into(),
        TokenKind::Regex { pattern, .. } => format!("/{pattern}/"),
        TokenKind::End => "(end)".into(),
    }
}

fn left_binding_power(kind: &TokenKind) -> u32 {
    let TokenKind::Op(op) = kind else { return 0 };
    match *op {
        "." => 75,
        "[" | "(" | "@" | "#" => 80,
        "{" => 70,
        "*" | "/" | "%" | "**" => 60,
        "+" | "-" | "&" => 50,
        "=" | "<" | ">" | "^" | "!=" | "<=" | ">=" | "~>" | "?:" | "??" | "in" => 40,
        "and" => 30,
        "or" => 25,
        "?" | ".." => 20,
        ":=" => 10,
        _ => 0,
    }
}

struct Parser {
    tokens: Vec<Lexed>,
    index: usize,
    source: Vec<char>,
    depth: usize,
    /// Number of `%` operators seen (for unique labels).
    parents: usize,
}

impl Parser {
    fn current(&self) -> Token {
        self.tokens[self.index.min(self.tokens.len() - 1)]
            .token
            .clone()
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.current().kind, TokenKind::Op(o) if o == op)
    }

    fn advance(&mut self) -> Token {
        let tok = self.current();
        if self.index < self.tokens.len() - 1 {
            self.index += 1;
        }
        tok
    }

    fn expect(&mut self, op: &str) -> Result<Token> {
        let tok = self.current();
        if matches!(tok.kind, TokenKind::Op(o) if o == op) {
            return Ok(self.advance());
        }
        if tok.kind == TokenKind::End {
            return Err(Error::at(
                "S0203",
                tok.position,
                format!("Expected {op:?} before end of expression"),
            ));
        }
        Err(Error::at(
            "S0202",
            tok.position,
            format!("Expected {op:?}, got {:?}", token_text(&tok.kind)),
        ))
    }

    fn expression(&mut self, rbp: u32) -> Result<Node> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let pos = self.current().position;
            return Err(Error::at(
                "S0201",
                pos,
                "Syntax error: expression nested too deeply",
            ));
        }
        let entry_depth = self.depth;
        let token = self.advance();
        let mut left = self.nud(token)?;
        while rbp < left_binding_power(&self.current().kind) {
            // Each infix step can deepen the tree by one level (left-associative chains).
            self.depth += 1;
            if self.depth > MAX_NESTING {
                let pos = self.current().position;
                return Err(Error::at(
                    "S0201",
                    pos,
                    "Syntax error: expression nested too deeply",
                ));
            }
            let token = self.advance();
            left = self.led(token, left)?;
        }
        self.depth = entry_depth - 1;
        Ok(left)
    }

    fn nud(&mut self, token: Token) -> Result<Node> {
        let pos = token.position;
        let node = |kind| Ok(Node::new(kind, pos));
        match token.kind {
            TokenKind::Num(n) => node(Kind::Num(n)),
            TokenKind::Str(s) => node(Kind::Str(Arc::from(s))),
            TokenKind::Bool(b) => node(Kind::Bool(b)),
            TokenKind::Null => node(Kind::Null),
            TokenKind::Name(name) => Ok(path_of(Node::new(Kind::Name(name), pos))),
            TokenKind::Var(name) => node(Kind::Var(name)),
            TokenKind::Regex { pattern, flags } => {
                node(Kind::Regex(Arc::new(compile_regex(&pattern, &flags, pos)?)))
            }
            TokenKind::End => Err(Error::at("S0207", pos, "Unexpected end of expression")),
            TokenKind::Op(op) => self.prefix_operator(op, pos),
        }
    }

    fn prefix_operator(&mut self, op: &'static str, pos: usize) -> Result<Node> {
        match op {
            "-" => self.negation(pos),
            "*" => Ok(Node::new(Kind::Wildcard, pos)),
            "**" => Ok(Node::new(Kind::Descendant, pos)),
            "%" => {
                self.parents += 1;
                Ok(Node::new(Kind::Parent(format!("%{}", self.parents)), pos))
            }
            "?" => Ok(Node::new(Kind::Placeholder, pos)),
            "(" => self.block(pos),
            "[" => self.array_constructor(pos),
            "{" => self.object_constructor(pos),
            "|" => self.transform(pos),
            "and" | "or" | "in" => Ok(path_of(Node::new(Kind::Name(op.to_string()), pos))),
            _ => Err(Error::at(
                "S0211",
                pos,
                format!("The symbol {op:?} cannot be used as a unary operator"),
            )),
        }
    }

    fn negation(&mut self, pos: usize) -> Result<Node> {
        let operand = self.expression(70)?;
        if let Kind::Num(n) = operand.kind
            && operand.predicates.is_empty()
        {
            return Ok(Node::new(Kind::Num(-n), pos));
        }
        Ok(Node::new(Kind::Negate(Box::new(operand)), pos))
    }

    fn block(&mut self, pos: usize) -> Result<Node> {
        let mut items = Vec::new();
        while !self.is_op(")") {
            items.push(self.expression(0)?);
            if !self.is_op(";") {
                break;
            }
            self.advance();
        }
        self.expect(")")?;
        Ok(Node::new(Kind::Block(items), pos))
    }

    fn array_constructor(&mut self, pos: usize) -> Result<Node> {
        let mut items = Vec::new();
        if !self.is_op("]") {
            loop {
                items.push(self.expression(0)?);
                if !self.is_op(",") {
                    break;
                }
                self.advance();
            }
        }
        self.expect("]")?;
        Ok(Node::new(Kind::Array { items, cons: false }, pos))
    }

    fn object_constructor(&mut self, pos: usize) -> Result<Node> {
        let pairs = self.object_pairs()?;
        Ok(Node::new(Kind::Object(pairs), pos))
    }

    fn transform(&mut self, pos: usize) -> Result<Node> {
        let pattern = self.expression(0)?;
        self.expect("|")?;
        let update = self.expression(0)?;
        let delete = if self.is_op(",") {
            self.advance();
            Some(self.expression(0)?)
        } else {
            None
        };
        self.expect("|")?;
        Ok(Node::new(
            Kind::Transform(Arc::new(TransformDef {
                pattern,
                update,
                delete,
            })),
            pos,
        ))
    }

    /// Parses `k: v, ...}` after an opening brace.
    fn object_pairs(&mut self) -> Result<ObjectPairs> {
        let mut pairs = Vec::new();
        if !self.is_op("}") {
            loop {
                let key = self.expression(0)?;
                self.expect(":")?;
                let value = self.expression(0)?;
                pairs.push((key, value));
                if !self.is_op(",") {
                    break;
                }
                self.advance();
            }
        }
        self.expect("}")?;
        Ok(pairs)
    }

    fn led(&mut self, token: Token, left: Node) -> Result<Node> {
        let pos = token.position;
        let TokenKind::Op(op) = token.kind else {
            return Err(Error::at(
                "S0201",
                pos,
                format!("Syntax error: {:?}", token_text(&token.kind)),
            ));
        };
        match op {
            "." => {
                let rhs = self.expression(75)?;
                make_path(left, rhs)
            }
            "[" => self.predicate(left, pos),
            "{" => self.grouping(left, pos),
            "(" => self.call(left, pos),
            "?" => self.condition(left, pos),
            ":=" => self.bind(left, pos),
            "~>" => {
                let rhs = self.expression(40)?;
                Ok(Node::new(
                    Kind::Apply {
                        lhs: Box::new(left),
                        rhs: Box::new(rhs),
                    },
                    pos,
                ))
            }
            "^" => self.sort(left, pos),
            "@" | "#" => self.step_binding(op, left, pos),
            _ => {
                let rhs = self.expression(left_binding_power(&TokenKind::Op(op)))?;
                Ok(Node::new(
                    Kind::Binary {
                        op,
                        lhs: Box::new(left),
                        rhs: Box::new(rhs),
                    },
                    pos,
                ))
            }
        }
    }

    /// `expr{key: value, ...}`
    fn grouping(&mut self, mut left: Node, pos: usize) -> Result<Node> {
        let pairs = self.object_pairs()?;
        if left.group.is_some() {
            return Err(Error::at(
                "S0210",
                pos,
                "Each step can only have one grouping expression",
            ));
        }
        left.group = Some(Box::new(pairs));
        Ok(left)
    }

    /// `condition ? then : otherwise`
    fn condition(&mut self, condition: Node, pos: usize) -> Result<Node> {
        let then = self.expression(0)?;
        let otherwise = if self.is_op(":") {
            self.advance();
            Some(Box::new(self.expression(0)?))
        } else {
            None
        };
        Ok(Node::new(
            Kind::Condition {
                condition: Box::new(condition),
                then: Box::new(then),
                otherwise,
            },
            pos,
        ))
    }

    /// `$name := value` (right associative).
    fn bind(&mut self, target: Node, pos: usize) -> Result<Node> {
        let Kind::Var(name) = target.kind else {
            return Err(Error::at(
                "S0212",
                pos,
                "The left side of := must be a variable name (start with $)",
            ));
        };
        let value = self.expression(9)?;
        Ok(Node::new(
            Kind::Bind {
                name,
                value: Box::new(value),
            },
            pos,
        ))
    }

    /// `step@$v` (focus) and `step#$i` (index) bindings.
    fn step_binding(&mut self, op: &str, left: Node, pos: usize) -> Result<Node> {
        let TokenKind::Var(name) = self.current().kind.clone() else {
            return Err(Error::at(
                "S0214",
                pos,
                format!("The right side of {op:?} must be a variable name (start with $)"),
            ));
        };
        self.advance();
        let mut path = if matches!(left.kind, Kind::Path { .. }) && left.group.is_none() {
            left
        } else {
            path_of(left)
        };
        with_last_step(&mut path, |step| {
            let has_predicates = !step.predicates.is_empty();
            let is_sort = matches!(step.kind, Kind::Sort(_));
            let binding = step.binding.get_or_insert_with(Box::default);
            if op == "@" {
                if has_predicates {
                    return Err(Error::at(
                        "S0215",
                        pos,
                        "A context variable binding must precede any predicates on a step",
                    ));
                }
                if is_sort {
                    return Err(Error::at(
                        "S0216",
                        pos,
                        "A context variable binding must precede the 'order-by' clause on a step",
                    ));
                }
                binding.focus = Some(name);
            } else if has_predicates {
                binding.index_stage = Some((step.predicates.len(), name));
            } else {
                binding.index = Some(name);
            }
            Ok(())
        })?;
        Ok(path)
    }

    fn predicate(&mut self, mut left: Node, pos: usize) -> Result<Node> {
        if self.is_op("]") {
            self.advance();
            with_last_step(&mut left, |target| target.keep_array = true);
            if let Kind::Path { keep_singleton, .. } = &mut left.kind {
                *keep_singleton = true;
            }
            return Ok(left);
        }
        let predicate = self.expression(0)?;
        self.expect("]")?;
        with_last_step(&mut left, |target| {
            if target.group.is_some() {
                return Err(Error::at(
                    "S0209",
                    pos,
                    "A predicate cannot follow a grouping expression in a step",
                ));
            }
            target.predicates.push(predicate);
            Ok(())
        })?;
        Ok(left)
    }

    fn call(&mut self, left: Node, pos: usize) -> Result<Node> {
        let mut args = Vec::new();
        if !self.is_op(")") {
            loop {
                args.push(self.expression(0)?);
                if !self.is_op(",") {
                    break;
                }
                self.advance();
            }
        }
        self.expect(")")?;
        if is_function_keyword(&left) {
            return self.lambda(args, pos);
        }
        let partial = args.iter().any(|a| matches!(a.kind, Kind::Placeholder));
        let func = Box::new(left);
        Ok(Node::new(
            if partial {
                Kind::Partial { func, args }
            } else {
                Kind::Call { func, args }
            },
            pos,
        ))
    }

    fn lambda(&mut self, args: Vec<Node>, pos: usize) -> Result<Node> {
        let mut params = Vec::new();
        for arg in args {
            match arg.kind {
                Kind::Var(name) if !name.is_empty() && name != "$" => params.push(name),
                _ => {
                    return Err(Error::at(
                        "S0208",
                        arg.position,
                        format!(
                            "Parameter {:?} of function definition must be a variable name (start with $)",
                            param_text(&arg)
                        ),
                    ));
                }
            }
        }
        let signature = if self.is_op("<") {
            Some(self.signature()?)
        } else {
            None
        };
        self.expect("{")?;
        let body = self.expression(0)?;
        self.expect("}")?;
        Ok(Node::new(
            Kind::Lambda(Arc::new(LambdaDef {
                params,
                body,
                signature,
            })),
            pos,
        ))
    }

    /// Reads a `<...>` signature from the raw source text.
    fn signature(&mut self) -> Result<Signature> {
        let start = self.tokens[self.index].start;
        let mut depth = 0;
        loop {
            let tok = self.advance();
            match tok.kind {
                TokenKind::Op("<") => depth += 1,
                TokenKind::Op(">") => {
                    depth -= 1;
                    if depth == 0 {
                        let text: String = self.source[start..tok.position].iter().collect();
                        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                        return Signature::parse(&text).map_err(|e| e.or_position(tok.position));
                    }
                }
                TokenKind::Op(">=") if depth == 1 => {
                    return Err(Error::at(
                        "S0401",
                        tok.position,
                        "Invalid function signature",
                    ));
                }
                TokenKind::End | TokenKind::Op("{") => {
                    return Err(Error::at(
                        "S0203",
                        tok.position,
                        "Expected \">\" before end of expression",
                    ));
                }
                _ => {}
            }
        }
    }

    fn sort(&mut self, left: Node, pos: usize) -> Result<Node> {
        self.expect("(")?;
        let mut terms = Vec::new();
        loop {
            let mut descending = false;
            if self.is_op("<") {
                self.advance();
            } else if self.is_op(">") {
                self.advance();
                descending = true;
            }
            terms.push(SortTerm {
                expr: self.expression(0)?,
                descending,
            });
            if !self.is_op(",") {
                break;
            }
            self.advance();
        }
        self.expect(")")?;
        let mut path = if matches!(left.kind, Kind::Path { .. }) {
            left
        } else {
            path_of(left)
        };
        if let Kind::Path { steps, .. } = &mut path.kind {
            steps.push(Node::new(Kind::Sort(terms), pos));
        }
        Ok(path)
    }
}

/// A parameter in a function definition, as written (for error messages).
fn param_text(node: &Node) -> String {
    match &node.kind {
        Kind::Var(name) => format!("${name}"),
        Kind::Path { steps, .. } => steps.first().map(Node::function_name).unwrap_or_default(),
        Kind::Num(n) => crate::value::format_number(*n),
        Kind::Str(s) => s.to_string(),
        _ => String::new(),
    }
}

fn is_function_keyword(node: &Node) -> bool {
    match &node.kind {
        Kind::Path { steps, .. } if steps.len() == 1 && node.predicates.is_empty() => {
            matches!(&steps[0].kind, Kind::Name(n) if n == "function" || n == "λ")
                && steps[0].predicates.is_empty()
        }
        _ => false,
    }
}

/// Wraps a single step into a path.
fn path_of(step: Node) -> Node {
    let pos = step.position;
    let keep = step.keep_array;
    Node::new(
        Kind::Path {
            steps: vec![step],
            keep_singleton: keep,
        },
        pos,
    )
}

/// Applies `f` to the last step of a path, or to the node itself when it is not a path.
fn with_last_step<R>(node: &mut Node, f: impl FnOnce(&mut Node) -> R) -> R {
    if let Kind::Path { steps, .. } = &mut node.kind
        && let Some(last) = steps.last_mut()
    {
        return f(last);
    }
    f(node)
}

/// Builds `lhs.rhs` into one path, as jsonata-js's post-parse step does.
fn make_path(lhs: Node, rhs: Node) -> Result<Node> {
    let pos = lhs.position;
    let mut path = match lhs.kind {
        Kind::Path { .. } if lhs.group.is_none() => lhs,
        _ => path_of(lhs),
    };
    let Kind::Path {
        steps,
        keep_singleton,
    } = &mut path.kind
    else {
        return Err(Error::at("S0201", pos, "Syntax error: invalid path"));
    };
    match rhs.kind {
        Kind::Path {
            steps: rest,
            keep_singleton: keep,
        } if rhs.group.is_none() => {
            steps.extend(rest);
            *keep_singleton |= keep;
        }
        _ => steps.push(rhs),
    }
    for step in steps.iter_mut() {
        match &step.kind {
            Kind::Num(_) | Kind::Bool(_) | Kind::Null => {
                let text = match &step.kind {
                    Kind::Num(n) => crate::value::format_number(*n),
                    Kind::Bool(b) => b.to_string(),
                    _ => "null".into(),
                };
                return Err(Error::at(
                    "S0213",
                    step.position,
                    format!(
                        "The literal value {text} cannot be used as a step within a path expression"
                    ),
                ));
            }
            Kind::Str(s) => step.kind = Kind::Name(s.to_string()),
            _ => {}
        }
        *keep_singleton |= step.keep_array;
    }
    if let Some(Kind::Array { cons, .. }) = steps.first_mut().map(|s| &mut s.kind) {
        *cons = true;
    }
    if let Some(Kind::Array { cons, .. }) = steps.last_mut().map(|s| &mut s.kind) {
        *cons = true;
    }
    path.position = pos;
    Ok(path)
}

/// Compiles a JSONata (JavaScript-flavoured) regex literal with the `regex` crate.
pub(crate) fn compile_regex(pattern: &str, flags: &str, pos: usize) -> Result<regex::Regex> {
    let translated = translate_js_regex(pattern);
    let mut builder = regex::RegexBuilder::new(&translated);
    builder
        .case_insensitive(flags.contains('i'))
        .multi_line(flags.contains('m'))
        .dot_matches_new_line(flags.contains('s'));
    builder.size_limit(1 << 20);
    builder
        .build()
        .map_err(|e| Error::at("S0303", pos, format!("Invalid regular expression: {e}")))
}

/// Rewrites JavaScript escapes the `regex` crate rejects (e.g. `\ `, `\/`, `\-` outside
/// classes) into portable forms.
fn translate_js_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ => {}
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e) => out.push_str(&translate_escape(e, in_class)),
            None => out.push_str("\\\\"),
        }
    }
    out
}

/// One escape sequence: JavaScript's `\d`, `\w` and `\b` are ASCII-only (the `regex`
/// crate's are Unicode-aware); other letters and digits pass through; escaped punctuation is
/// re-escaped in the `regex` crate's syntax.
fn translate_escape(e: char, in_class: bool) -> String {
    match e {
        'd' => "[0-9]".into(),
        'D' => "[^0-9]".into(),
        'w' => "[0-9A-Za-z_]".into(),
        'W' => "[^0-9A-Za-z_]".into(),
        'b' if in_class => "\\x08".into(),
        'b' => "(?-u:\\b)".into(),
        'B' => "(?-u:\\B)".into(),
        e if e.is_ascii_alphanumeric() => format!("\\{e}"),
        e => regex::escape(&e.to_string()),
    }
}
