//! A builtin's arguments, as the plugin shim hands them over: one attribute set, as JSON.
//!
//! Reading goes through [`Args`] so that every mistake is reported the same way, naming the
//! argument (and the list element) at fault in the words Nix uses for type errors.

use crate::{Error, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

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

/// The attributes a builtin was called with.
#[derive(Debug)]
pub struct Args {
    attrs: Map<String, Value>,
}

impl Args {
    /// Reads `json`, an object, refusing attributes that are not in `expected` (as a Nix
    /// function with a `{ a ? …, b ? … }` pattern does).
    pub fn parse(json: &str, expected: &[&'static str]) -> Result<Args> {
        let attrs = match serde_json::from_str(json)? {
            Value::Object(attrs) => attrs,
            other => return Err(Error::NotASet { found: nix_type(&other) }),
        };
        if let Some(arg) = attrs.keys().find(|k| !expected.contains(&k.as_str())) {
            return Err(Error::UnexpectedArgument { arg: arg.clone(), expected: expected.to_vec() });
        }
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
