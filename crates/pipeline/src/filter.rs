//! `Filter`: a CEL expression over one variable, `event`, compiled once per sink and evaluated
//! once per event.
//!
//! The `cel` crate parses and interprets but has no type checker, so [`Filter::compile`] adds a
//! small static pass of its own (see [`Filter::compile`] for what it checks). Everything about
//! `event` itself is dynamic: its fields and their types are only known per event.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value};
use serde_json::Value as Json;

/// The one variable a filter sees.
const EVENT: &str = "event";

/// Functions a filter may call, beside the operators (`_&&_`, `@in`, ...). The `cel` crate
/// resolves names only at run time, so an unknown name (`startswith`) would otherwise make every
/// event a runtime error: a sink that silently sends nothing. The list is what this build of
/// `cel` (no `regex`, no `chrono` feature) implements; `known_functions_are_callable` in the
/// tests calls each one.
const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "type",
    "dyn",
];

/// Identifiers that name types, for `type(event.x) == string`.
const TYPE_NAMES: &[&str] = &[
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// A filter expression that did not compile: the API's 400 with `detail.field: "filter"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct FilterError {
    /// What is wrong, for a person.
    pub message: String,
    /// 1-based line of the offending spot.
    pub line: usize,
    /// 1-based column, counted in characters (not bytes) from the start of the line.
    pub column: usize,
}

/// Why one event could not be evaluated. The caller counts the event as not matching
/// (`filter_errors` in health).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The event is not a JSON object, so it has no fields to look at.
    #[error("the event is not a JSON object")]
    NotAnObject,
    /// Evaluation failed: a missing field, an operator applied to the wrong types, ...
    #[error("{0}")]
    Runtime(String),
    /// The expression produced something other than a bool (e.g. `event.severity` alone).
    #[error("the filter produced {0}, not a bool")]
    NotBool(String),
}

/// A compiled filter. Cheap to share (`Send + Sync`); evaluation takes `&self`.
pub struct Filter {
    source: String,
    program: Program,
    env: Arc<Env>,
    /// The parts of `event` the expression reads: only those are converted per event.
    projection: Projection,
}

/// Which parts of an event a filter reads, as a tree of member names. A node marked `whole` is
/// used as a value (compared, iterated, sized, ...) and converted entirely; any other node is
/// only ever the operand of a member selection (`.name`, `["name"]`) of one of its children, so
/// a map of those children alone gives every selection the same result. `event.metadata.domain`
/// converts one string, not all of `metadata`.
#[derive(Debug, Default, Clone, PartialEq)]
struct Projection {
    whole: bool,
    members: BTreeMap<String, Projection>,
}

impl Projection {
    fn mark(&mut self, path: &[&str]) {
        let mut node = self;
        for segment in path {
            if node.whole {
                return;
            }
            node = node.members.entry((*segment).to_owned()).or_default();
        }
        node.whole = true;
        node.members.clear();
    }

    /// The paths converted entirely, dotted (`""` for the whole event), for tests and `Debug`.
    fn paths(&self) -> Vec<String> {
        fn walk(node: &Projection, prefix: &str, out: &mut Vec<String>) {
            if node.whole {
                out.push(prefix.to_owned());
            }
            for (name, child) in &node.members {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                walk(child, &path, out);
            }
        }
        let mut out = Vec::new();
        walk(self, "", &mut out);
        out
    }

    /// `value` as a CEL value, with only the parts this projection reads.
    fn apply<'v>(&self, value: &'v Json) -> Box<dyn Val + 'v> {
        match value {
            // A value that is not an object is converted as is, so selecting a member of it
            // fails exactly as it would on the whole event.
            Json::Object(members) if !self.whole => {
                let map: HashMap<_, _> = self
                    .members
                    .iter()
                    .filter_map(|(name, child)| {
                        let (key, v) = members.get_key_value(name)?;
                        Some((CelMapKey::from(key.as_str()), child.apply(v)))
                    })
                    .collect();
                Box::new(CelMap::from(map))
            }
            _ => to_val(value),
        }
    }
}

impl std::fmt::Debug for Filter {
    // `Env` has no `Debug`; the source says what the filter is.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("source", &self.source)
            .field("reads", &self.projection.paths())
            .finish_non_exhaustive()
    }
}

/// The standard environment, built once: building it registers every overload. Optional
/// values (`a.?b`) are off: one way to test for a field (`has`) is enough for filters.
fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    Arc::clone(ENV.get_or_init(|| Arc::new(Env::stdlib().with_optional_support(false))))
}

impl Filter {
    /// Parses and checks `source`.
    ///
    /// Checked here, with the position of the offending part:
    /// - syntax (the CEL grammar);
    /// - every identifier is `event`, a variable bound by a macro (`exists(x, ...)`), or a type
    ///   name (`string`, `int`, ...);
    /// - every function is one this build implements (`FUNCTIONS`), so a typo is not a
    ///   runtime error on every event;
    /// - the result can be a bool: a literal, list, map, arithmetic (`+ - * / %`), or a call
    ///   known to return something else (`size`, `int`, `string`, `map(...)`, `filter(...)`) is
    ///   refused at the top and as an operand of `&&`, `||`, `!` and as a `? :` condition;
    ///   each branch of a top-level `? :` is checked the same way.
    ///
    /// Not checked (found per event, as an [`EvalError`]): whether a field of `event` exists
    /// and what type it has (`event.severity >= "high"`), argument types of functions, division
    /// by zero, integer overflow.
    pub fn compile(source: &str) -> Result<Filter, FilterError> {
        let env = env();
        let program = env.compile(source).map_err(|errors| {
            // The parser reports lines and columns itself, 1-based, in characters.
            let first = errors.errors.first();
            FilterError {
                message: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
                line: first.map_or(1, |e| usize::try_from(e.pos.0).unwrap_or(1).max(1)),
                column: first.map_or(1, |e| usize::try_from(e.pos.1).unwrap_or(1).max(1)),
            }
        })?;
        let at = |id: u64, message: String| {
            let start = program
                .source_info()
                .offset_for(id)
                .map_or(0, |(start, _)| start as usize);
            let (line, column) = line_column(source, start);
            FilterError { message, line, column }
        };
        let mut check = Check {
            bound: Vec::new(),
            projection: Projection::default(),
        };
        check
            .walk(program.expression())
            .map_err(|(id, message)| at(id, message))?;
        let root = program.expression();
        returns_bool(root).map_err(|(id, message)| at(id, message))?;
        // Taken out before `program` moves: the walk borrowed names from it.
        let projection = check.projection;
        Ok(Filter {
            source: source.to_owned(),
            program,
            env,
            projection,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the filter on one event (its JSON rendering, an object). Any error is for the
    /// caller to count as `false`.
    pub fn matches(&self, event: &Json) -> Result<bool, EvalError> {
        if !event.is_object() {
            return Err(EvalError::NotAnObject);
        }
        // The event is lent to the interpreter, strings borrowed, so evaluation copies no text;
        // only the parts the expression reads are converted.
        let value = self.projection.apply(event);
        let mut context = Context::with_env(Arc::clone(&self.env));
        context.add_variable_as_val(EVENT, value);
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError::NotBool(other.type_of().to_string())),
            Err(e) => Err(EvalError::Runtime(e.to_string())),
        }
    }
}

/// A JSON value as a CEL value borrowing its strings. Integers are `int` when they fit (so
/// `event.severity + 1` works: CEL has no `uint + int`), `uint` above `i64::MAX`, else `double`.
fn to_val(value: &Json) -> Box<dyn Val + '_> {
    match value {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Json::String(s) => Box::new(CelString::from(s.as_str())),
        Json::Array(items) => Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>())),
        Json::Object(members) => {
            let map: HashMap<_, _> = members
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), to_val(v)))
                .collect();
            Box::new(CelMap::from(map))
        }
    }
}

/// 1-based line and column (in characters) of the `offset`-th character of `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut column) = (1, 1);
    for c in source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// A static error: the node it is about, and the message.
type StaticError = (u64, String);

/// The identifier and function walk, which also collects the members of `event` read.
struct Check<'a> {
    /// Variables bound by enclosing comprehensions (macros), innermost last.
    bound: Vec<&'a str>,
    projection: Projection,
}

impl<'a> Check<'a> {
    fn walk(&mut self, node: &'a IdedExpr) -> Result<(), StaticError> {
        match &node.expr {
            Expr::Ident(name) => {
                if self.bound.contains(&name.as_str()) {
                    if name == EVENT {
                        // A macro variable named `event` hides the event: convert all of it,
                        // rather than reason about which `event` a select means.
                        self.projection.mark(&[]);
                    }
                } else if name == EVENT {
                    self.projection.mark(&[]);
                } else if !TYPE_NAMES.contains(&name.as_str()) {
                    return Err((
                        node.id,
                        format!("undeclared reference to '{name}': the only variable is 'event'"),
                    ));
                }
            }
            Expr::Select(select) => {
                // The walk meets the outermost selection of a chain first, so the path marked
                // is the longest one: `event.a.b` marks `a.b`, not `a`. `has(event.a.b)` needs
                // `a.b` present or not, so it marks the same.
                let path = if select.test {
                    self.event_path(&select.operand)
                } else {
                    self.event_path(node)
                };
                match path {
                    Some(mut path) => {
                        if select.test {
                            path.push(&select.field);
                        }
                        self.projection.mark(&path);
                    }
                    None => self.walk(&select.operand)?,
                }
            }
            Expr::Call(call) => {
                let operator = call.func_name.starts_with(['_', '@', '!', '-']);
                if !operator && !FUNCTIONS.contains(&call.func_name.as_str()) {
                    return Err((node.id, format!("unknown function '{}'", call.func_name)));
                }
                // `event["name"]` reads one member, like `event.name`.
                if let Some(path) = self.event_path(node) {
                    self.projection.mark(&path);
                    return Ok(());
                }
                if let Some(target) = &call.target {
                    self.walk(target)?;
                }
                for arg in &call.args {
                    self.walk(arg)?;
                }
            }
            Expr::Comprehension(c) => {
                self.walk(&c.iter_range)?;
                self.walk(&c.accu_init)?;
                let depth = self.bound.len();
                self.bound.push(&c.iter_var);
                if let Some(v) = &c.iter_var2 {
                    self.bound.push(v);
                }
                self.bound.push(&c.accu_var);
                for part in [&c.loop_cond, &c.loop_step, &c.result] {
                    self.walk(part)?;
                }
                self.bound.truncate(depth);
            }
            Expr::List(list) => {
                for item in &list.elements {
                    self.walk(item)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            self.walk(&e.key)?;
                            self.walk(&e.value)?;
                        }
                        EntryExpr::StructField(f) => self.walk(&f.value)?,
                    }
                }
            }
            Expr::Struct(s) => {
                return Err((
                    node.id,
                    format!("message construction ('{}{{...}}') is not supported", s.type_name),
                ));
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
        Ok(())
    }

    /// The member path `node` selects in the event, if it is a chain of member selections
    /// (`.name`, `["name"]` with a literal) on `event` itself (not on a macro variable of that
    /// name): `event.a["b"]` is `["a", "b"]`, `event` is `[]`.
    fn event_path<'n>(&self, node: &'n IdedExpr) -> Option<Vec<&'n str>> {
        let mut path = Vec::new();
        let mut node = node;
        loop {
            match &node.expr {
                Expr::Ident(name) if name == EVENT && !self.bound.contains(&EVENT) => {
                    path.reverse();
                    return Some(path);
                }
                Expr::Select(select) if !select.test => {
                    path.push(select.field.as_str());
                    node = &select.operand;
                }
                Expr::Call(call) if call.func_name == "_[_]" && call.target.is_none() && call.args.len() == 2 => {
                    let Expr::Literal(LiteralValue::String(s)) = &call.args[1].expr else {
                        return None;
                    };
                    path.push(s.inner());
                    node = &call.args[0];
                }
                _ => return None,
            }
        }
    }
}

/// What is known statically about the type of an expression.
enum Kind {
    Bool,
    /// Known not to be a bool: the type's name, for the message.
    Other(&'static str),
    /// Only known per event.
    Dynamic,
}

fn kind(node: &IdedExpr) -> Kind {
    match &node.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => Kind::Bool,
        Expr::Literal(LiteralValue::Int(_)) => Kind::Other("an int"),
        Expr::Literal(LiteralValue::UInt(_)) => Kind::Other("a uint"),
        Expr::Literal(LiteralValue::Double(_)) => Kind::Other("a double"),
        Expr::Literal(LiteralValue::String(_)) => Kind::Other("a string"),
        Expr::Literal(LiteralValue::Bytes(_)) => Kind::Other("bytes"),
        Expr::Literal(LiteralValue::Null) => Kind::Other("null"),
        Expr::List(_) => Kind::Other("a list"),
        Expr::Map(_) | Expr::Struct(_) => Kind::Other("a map"),
        Expr::Select(select) if select.test => Kind::Bool, // has(...)
        Expr::Select(_) | Expr::Ident(_) | Expr::Unspecified => Kind::Dynamic,
        Expr::Comprehension(c) => comprehension_kind(c),
        Expr::Call(call) => match call.func_name.as_str() {
            "_&&_"
            | "_||_"
            | "!_"
            | "_==_"
            | "_!=_"
            | "_<_"
            | "_<=_"
            | "_>_"
            | "_>=_"
            | "@in"
            | "@not_strictly_false"
            | "startsWith"
            | "endsWith"
            | "contains"
            | "bool" => Kind::Bool,
            "_+_" | "_-_" | "_*_" | "_/_" | "_%_" | "-_" => Kind::Other("the result of arithmetic"),
            "size" | "int" => Kind::Other("an int"),
            "uint" => Kind::Other("a uint"),
            "double" => Kind::Other("a double"),
            "string" => Kind::Other("a string"),
            "bytes" => Kind::Other("bytes"),
            "type" => Kind::Other("a type"),
            "dyn" => call.args.first().map_or(Kind::Dynamic, kind),
            "_?_:_" => match (call.args.get(1).map(kind), call.args.get(2).map(kind)) {
                (Some(Kind::Other(t)), _) | (_, Some(Kind::Other(t))) => Kind::Other(t),
                (Some(Kind::Bool), Some(Kind::Bool)) => Kind::Bool,
                _ => Kind::Dynamic,
            },
            _ => Kind::Dynamic,
        },
    }
}

/// Macros expand to comprehensions: `all`/`exists` accumulate a bool, `exists_one` compares a
/// count, `map`/`filter` build a list. The result is usually the accumulator itself, whose type
/// is that of its initial value.
fn comprehension_kind(c: &ComprehensionExpr) -> Kind {
    match &c.result.expr {
        Expr::Ident(name) if *name == c.accu_var => kind(&c.accu_init),
        _ => kind(&c.result),
    }
}

/// Refuses an expression that cannot produce a bool, at the top or where a bool is required.
fn returns_bool(root: &IdedExpr) -> Result<(), StaticError> {
    fn need_bool(node: &IdedExpr, role: &str) -> Result<(), StaticError> {
        if let Kind::Other(t) = kind(node) {
            return Err((node.id, format!("{role} must be a bool, but this is {t}")));
        }
        Ok(())
    }
    fn operands(node: &IdedExpr) -> Result<(), StaticError> {
        match &node.expr {
            Expr::Call(call) => {
                let role = match call.func_name.as_str() {
                    "_&&_" => Some("an operand of '&&'"),
                    "_||_" => Some("an operand of '||'"),
                    "!_" => Some("the operand of '!'"),
                    _ => None,
                };
                if let Some(role) = role {
                    for arg in &call.args {
                        need_bool(arg, role)?;
                    }
                }
                if call.func_name == "_?_:_" {
                    if let Some(cond) = call.args.first() {
                        need_bool(cond, "the condition of '? :'")?;
                    }
                }
                if let Some(target) = &call.target {
                    operands(target)?;
                }
                call.args.iter().try_for_each(operands)
            }
            Expr::Select(select) => operands(&select.operand),
            Expr::Comprehension(c) => [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .try_for_each(operands),
            Expr::List(list) => list.elements.iter().try_for_each(operands),
            Expr::Map(map) => map.entries.iter().try_for_each(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => operands(&e.key).and_then(|()| operands(&e.value)),
                EntryExpr::StructField(f) => operands(&f.value),
            }),
            _ => Ok(()),
        }
    }
    // At the top, a `? :` must give a bool on both branches.
    if let Expr::Call(call) = &root.expr {
        if call.func_name == "_?_:_" {
            for branch in call.args.iter().skip(1) {
                need_bool(branch, "a filter's result")?;
            }
        }
    }
    need_bool(root, "a filter's result")?;
    operands(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_parts_read_are_converted() {
        let reads = |src: &str| Filter::compile(src).unwrap().projection.paths();
        assert_eq!(
            reads(r#"event.severity >= 7 && event.metadata.domain in ["finance", "hr"]"#),
            ["metadata.domain", "severity"]
        );
        assert_eq!(
            reads(r#"event["type"] == "a" && has(event.actor.email)"#),
            ["actor.email", "type"]
        );
        assert_eq!(reads(r#"event.actor["id"] == "u" && event.actor == {}"#), ["actor"]);
        assert_eq!(
            reads("event.metadata.tags.exists(t, t == event.type)"),
            ["metadata.tags", "type"]
        );
        assert_eq!(reads("size(event.metadata) > 1 && event.metadata.x == 1"), ["metadata"]);
        assert_eq!(reads("true"), Vec::<String>::new());
        assert_eq!(reads("size(event) > 1 && event.a == 1"), [""]);
        assert_eq!(reads(r#""actor" in event"#), [""]);
        assert_eq!(reads("[1].exists(event, event == 1)"), [""]);
    }

    #[test]
    fn converting_only_what_is_read_changes_no_result() {
        let event = json!({
            "severity": 8, "type": "auth.login", "big": 18446744073709551615u64, "f": 1.5,
            "actor": {"id": "u", "email": null}, "metadata": {"domain": "hr", "tags": ["x"]}
        });
        for src in [
            r#"event.severity >= 7 && event.metadata.domain in ["finance", "hr"]"#,
            "has(event.actor.email) && event.actor.email == null",
            "has(event.missing)",
            "event.missing == 1",
            "event.big > 0u && event.f > 1",
            "event.severity",
            r#"event.metadata.tags.exists(t, t == "x")"#,
            "event.metadata.domain.x == 1",
            "has(event.metadata.domain.x)",
            r#"event.actor.email == null && event.actor["id"] == "u" && !has(event.actor.name)"#,
            "event.metadata.tags.y == 1",
            "event.metadata.nope.y == 1",
            "event.metadata == {'domain': 'hr', 'tags': ['x']} && event.metadata.domain == 'hr'",
        ] {
            let projected = Filter::compile(src).unwrap();
            assert_ne!(projected.projection.paths(), [""], "{src}");
            let mut whole = Filter::compile(src).unwrap();
            whole.projection.mark(&[]);
            assert_eq!(projected.matches(&event), whole.matches(&event), "{src}");
        }
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncé\nx", 0), (1, 1));
        assert_eq!(line_column("ab\ncé\nx", 2), (1, 3));
        assert_eq!(line_column("ab\ncé\nx", 3), (2, 1));
        assert_eq!(line_column("ab\ncé\nx", 6), (3, 1));
    }
}
