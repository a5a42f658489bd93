//! A builtin's arguments, as the plugin shim hands them over: one attribute set, as JSON.
//!
//! Reading goes through [`Args`] so that every mistake is reported the same way, naming the
//! argument (and the list element) at fault in the words Nix uses for type errors.

use crate::{Error, Result};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// What the evaluating Nix tells about itself that argument checks need.
#[derive(Debug, Clone, Default)]
pub struct Evaluator {
    /// The system it evaluates for (`x86_64-linux`).
    pub system: String,
    /// Its store root.
    pub store_dir: String,
    /// Its `sandbox-paths` setting, one entry each (`target=source`, or a path).
    pub sandbox_paths: Vec<String>,
}

impl Evaluator {
    /// The shell Nix puts into its sandbox (`sandbox-paths` holding `/bin/sh`), if it does.
    pub fn sandbox_shell(&self) -> Option<&'static str> {
        self.sandbox_paths
            .iter()
            .any(|entry| entry.split('=').next().map(|t| t.trim_end_matches('?')) == Some("/bin/sh"))
            .then_some("/bin/sh")
    }
}

/// How deep sets and lists may be nested in one argument. No image document comes near it; it
/// stays well under serde_json's own limit (128 levels, which reading a derivation's attributes
/// meets first, two levels further down), so that an argument too deep is named, not reported
/// as unreadable JSON.
pub const MAX_DEPTH: usize = 100;

/// How deep sets and lists nest in the JSON text `json` (0 for a string or a number). Counted
/// in a loop, not by reading the value, which would recurse as deep.
pub fn depth(json: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in json.bytes() {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// What is wrong with an argument or attribute nested deeper than [`MAX_DEPTH`].
pub fn too_deep_problem() -> String {
    format!("nests sets and lists more than {MAX_DEPTH} deep")
}

/// The error for a derivation's structured attributes `json` (at `path`) that cannot be read
/// for an argument (or another attribute) nested too deep: naming the call's function and its
/// argument, as the plugin does, or the attribute.
pub fn too_deep_in_attributes(path: &Path, json: &str) -> Option<Error> {
    let raw: BTreeMap<String, Box<RawValue>> = serde_json::from_str(json).ok()?;
    let (name, value) = raw.iter().find(|(_, v)| depth(v.get()) > MAX_DEPTH)?;
    let function = raw.get("function").and_then(|f| serde_json::from_str::<String>(f.get()).ok());
    let arguments: Option<BTreeMap<String, Box<RawValue>>> = serde_json::from_str(value.get()).ok();
    let argument =
        arguments.and_then(|a| a.into_iter().find(|(_, v)| depth(v.get()) > MAX_DEPTH)).map(|(a, _)| a);
    Some(match (name.as_str(), function, argument) {
        ("arguments", Some(function), Some(arg)) => {
            Error::InCall { function, source: Box::new(Error::argument(arg, too_deep_problem())) }
        }
        _ => Error::Attributes {
            path: path.into(),
            problem: format!("attribute '{name}' {}", too_deep_problem()),
        },
    })
}

/// The attributes a builtin was called with.
#[derive(Debug)]
pub struct Args {
    attrs: Map<String, Value>,
}

impl Args {
    /// Reads `json`, an object, refusing attributes that are not in `expected` (as a Nix
    /// function with a `{ a ? …, b ? … }` pattern does).
    pub fn parse(json: &str, expected: &[&'static str]) -> Result<Args> {
        let raw: BTreeMap<String, Box<RawValue>> = match serde_json::from_str(json) {
            Ok(raw) => raw,
            Err(_) => return Err(Error::NotASet { found: nix_type(&serde_json::from_str(json)?) }),
        };
        if let Some(arg) = raw.keys().find(|k| !expected.contains(&k.as_str())) {
            return Err(Error::UnexpectedArgument { arg: arg.clone(), expected: expected.to_vec() });
        }
        // Each argument is measured before it is read, so that one nested too deep is named; it
        // was an "internal error", serde_json's limit reached.
        let attrs = raw
            .into_iter()
            .map(|(name, value)| match depth(value.get()) > MAX_DEPTH {
                true => Err(Error::argument(&name, too_deep_problem())),
                false => Ok((name, serde_json::from_str(value.get())?)),
            })
            .collect::<Result<Map<String, Value>>>()?;
        Ok(Args { attrs })
    }

    /// Whether `name` was given (even as `null`).
    pub fn has(&self, name: &str) -> bool {
        self.attrs.contains_key(name)
    }

    /// The value of `name`, unless it is absent or `null`.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.attrs.get(name).filter(|v| !v.is_null())
    }

    /// The string `name`; `None` when absent or `null`.
    pub fn string(&self, name: &str) -> Result<Option<String>> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(type_error(name, other, "a string")),
        }
    }

    /// The integer `name`; `None` when absent or `null`.
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(other) => Err(type_error(name, other, "an integer")),
        }
    }

    /// The Boolean `name`; `None` when absent or `null`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(type_error(name, other, "a Boolean")),
        }
    }

    /// The list of strings `name`, or an empty list when it is not given.
    pub fn string_list(&self, name: &str) -> Result<Vec<String>> {
        let Some(value) = self.attrs.get(name) else { return Ok(Vec::new()) };
        let Value::Array(items) = value else {
            return Err(type_error(name, value, "a list"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(type_error(format!("{name}[{i}]"), other, "a string")),
            })
            .collect()
    }
}

fn type_error(arg: impl std::fmt::Display, value: &Value, expected: &str) -> Error {
    Error::argument(arg, format!("is {} while {expected} was expected", nix_type(value)))
}

/// How Nix names the type of a value (`showType`), for the JSON it becomes.
fn nix_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a Boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a set",
    }
}

/// Checks that argument `arg`, `path`, is in the store (a store path or a file inside one).
pub fn check_in_store(arg: impl std::fmt::Display, path: &str, store_dir: &str) -> Result<()> {
    let in_store = path.strip_prefix(store_dir).and_then(|rest| rest.strip_prefix('/'));
    if in_store.is_some_and(|name| !name.is_empty()) {
        Ok(())
    } else {
        Err(Error::argument(arg, format!("{path:?} is not a store path (the store is {store_dir})")))
    }
}

/// The derivation's output paths.
#[derive(Debug, Deserialize)]
pub struct Outputs {
    /// `$out`.
    pub out: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An argument nested deeper than can be read is named; one exactly as deep as allowed is
    /// read. (It was "internal error: the plugin passed malformed arguments".)
    #[test]
    fn an_argument_nested_too_deep_is_named() {
        let nested =
            |depth: usize| format!(r#"{{"name":"x","config":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let args = Args::parse(&nested(MAX_DEPTH), &["name", "config"]).unwrap();
        assert!(args.value("config").is_some());
        let err = Args::parse(&nested(MAX_DEPTH + 1), &["name", "config"]).unwrap_err();
        assert_eq!(err.argument_at_fault(), Some("config"));
        assert_eq!(
            err.to_string(),
            Error::argument("config", "nests sets and lists more than 100 deep").to_string()
        );
        assert!(matches!(Args::parse("[1]", &[]), Err(Error::NotASet { found: "a list" })));
        // brackets in strings, escaped quotes included, do not count
        assert_eq!(depth(r#"{"a":["[[\"{{",{"b":[]}]}"#), 4);
        assert_eq!(depth(r#""x""#), 0);
        // a derivation's attributes too deep for serde_json: the call's argument is named
        let attrs = format!(r#"{{"function":"buildImage","arguments":{}}}"#, nested(200));
        let path = Path::new(".attrs.json");
        let err = too_deep_in_attributes(path, &attrs).unwrap().to_string();
        assert!(err.contains("buildImage") && err.contains("argument 'config' nests"), "{err}");
        let err =
            too_deep_in_attributes(path, &format!(r#"{{"config":{}1{}}}"#, "[".repeat(200), "]".repeat(200)));
        assert!(err.unwrap().to_string().contains("attribute 'config' nests"));
    }

    #[test]
    fn string_lists() {
        let args = Args::parse(r#"{"lines": ["a", "b"]}"#, &["lines", "other"]).unwrap();
        assert_eq!(args.string_list("lines").unwrap(), ["a", "b"]);
        assert!(args.string_list("other").unwrap().is_empty());
    }

    #[test]
    fn wrong_types_name_the_argument() {
        let err = |json: &str| {
            Args::parse(json, &["lines"]).and_then(|a| a.string_list("lines")).unwrap_err().to_string()
        };
        assert_eq!(err(r#"{"lines": "a"}"#), "argument 'lines' is a string while a list was expected");
        assert_eq!(
            err(r#"{"lines": ["a", 1]}"#),
            "argument 'lines[1]' is an integer while a string was expected"
        );
        assert_eq!(err(r#"{"lines": [1.5]}"#), "argument 'lines[0]' is a float while a string was expected");
        assert_eq!(err(r#"{"lines": null}"#), "argument 'lines' is null while a list was expected");
        assert_eq!(err(r#"{"lines": {}}"#), "argument 'lines' is a set while a list was expected");
        assert_eq!(err(r#"{"lnes": []}"#), "unexpected argument 'lnes'; the arguments are: lines");
        assert_eq!(err(r#"["lines"]"#), "the argument is a list while a set was expected");
    }
}
