//! The image configuration stowage writes (OCI image-spec `config.json`, the document type is
//! [`ImageConfig`]): platform, creation time, the runtime `config` object, `rootfs.diff_ids` and
//! `history`.
//!
//! The user's `config` attribute is checked here (at evaluation time, so mistakes surface before
//! any build) and normalised (at build time, by the same code): most importantly `Env` ends with
//! one entry per variable. Docker's runtime keeps the last of duplicate entries, Kubernetes
//! promises nothing, so the image itself must not hold duplicates.

use crate::format::digest::Digest;
use crate::format::oci::{History, ImageConfig, RootFs};
use crate::{Error, Result};
use serde_json::{Map, Value};

/// The fields of the runtime `config` object and the JSON type each must have.
const RUNTIME_FIELDS: &[(&str, Kind)] = &[
    ("User", Kind::String),
    ("ExposedPorts", Kind::SetOfEmptySets),
    ("Env", Kind::Strings),
    ("Entrypoint", Kind::Strings),
    ("Cmd", Kind::Strings),
    ("Volumes", Kind::SetOfEmptySets),
    ("WorkingDir", Kind::String),
    ("Labels", Kind::SetOfStrings),
    ("StopSignal", Kind::String),
    ("ArgsEscaped", Kind::Bool),
    ("Healthcheck", Kind::Set),
    ("OnBuild", Kind::Strings),
    ("Shell", Kind::Strings),
];

#[derive(Clone, Copy)]
enum Kind {
    String,
    Strings,
    Bool,
    Set,
    SetOfStrings,
    SetOfEmptySets,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Strings => "a list of strings",
            Kind::Bool => "a Boolean",
            Kind::Set => "a set",
            Kind::SetOfStrings => "a set of strings",
            Kind::SetOfEmptySets => "a set whose values are { } (like { \"80/tcp\" = { }; })",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (Kind::String, Value::String(_))
            | (Kind::Bool, Value::Bool(_))
            | (Kind::Set, Value::Object(_)) => true,
            (Kind::Strings, Value::Array(items)) => items.iter().all(Value::is_string),
            (Kind::SetOfStrings, Value::Object(map)) => map.values().all(Value::is_string),
            (Kind::SetOfEmptySets, Value::Object(map)) => {
                map.values().all(|v| v.as_object().is_some_and(Map::is_empty))
            }
            _ => false,
        }
    }
}

/// The store paths under `store_dir` that strings in `config` mention (`"${pkgs.hello}/bin/hello"`
/// mentions the path of hello), sorted, once each: written into a derivation's output, they
/// become its references, and so the image's closure gains them, as in dockerTools. (Nix finds
/// references by the paths' hashes, so a path mentioned but not an input is not one.)
pub fn referenced_store_paths(config: &Value, store_dir: &str) -> Vec<String> {
    let pattern = format!(r"{}/[0-9a-z]{{32}}-[A-Za-z0-9+\-._?=]+", regex_lite::escape(store_dir));
    let store_path = regex_lite::Regex::new(&pattern).expect("a valid pattern");
    let mut found = std::collections::BTreeSet::new();
    let mut pending = vec![config];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(s) => found.extend(store_path.find_iter(s).map(|m| m.as_str().to_owned())),
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => pending.extend(fields.values()),
            _ => {}
        }
    }
    found.into_iter().collect()
}

/// Checks the runtime `config` object (the `config` argument) and returns it normalised: `Env`
/// with one entry per variable, where the last value wins and the first position is kept.
pub fn normalise_runtime_config(config: &Value) -> Result<Map<String, Value>> {
    let map = match config {
        Value::Object(map) => map,
        // dockerTools' default for buildImage, and what its users pass for "no config"
        Value::Null => return Ok(Map::new()),
        _ => return Err(Error::argument("config", "is not a set")),
    };
    let mut out = Map::new();
    for (key, value) in map {
        let Some(&(_, kind)) = RUNTIME_FIELDS.iter().find(|(name, _)| name == key) else {
            let known: Vec<_> = RUNTIME_FIELDS.iter().map(|(name, _)| *name).collect();
            return Err(Error::argument(
                format!("config.{key}"),
                format!("is not a field of an image config (those are: {})", known.join(", ")),
            ));
        };
        if value.is_null() {
            continue; // `null` leaves a field out, as dockerTools users write `Cmd = null`.
        }
        if !kind.accepts(value) {
            return Err(Error::argument(format!("config.{key}"), format!("must be {}", kind.describe())));
        }
        let value = if key == "Env" { Value::from(merge_env(&[], &strings(value))?) } else { value.clone() };
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// `base` followed by `overrides`, one entry per variable: each variable keeps the position of its
/// first appearance and takes the value of its last. Entries must be `NAME=value`.
pub fn merge_env(base: &[String], overrides: &[String]) -> Result<Vec<String>> {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (index, entry) in base.iter().chain(overrides).enumerate() {
        let Some((name, _)) = entry.split_once('=').filter(|(name, _)| !name.is_empty()) else {
            return Err(Error::argument(
                format!("config.Env[{}]", index.saturating_sub(base.len())),
                format!("{entry:?} is not of the form NAME=value"),
            ));
        };
        match merged.iter_mut().find(|(existing, _)| existing == name) {
            Some(slot) => slot.1 = entry.clone(),
            None => merged.push((name.to_owned(), entry.clone())),
        }
    }
    Ok(merged.into_iter().map(|(_, entry)| entry).collect())
}

/// The runtime config of an image built on a base image whose config is `base`: the base's
/// fields, each replaced where `ours` sets it, except `Env`, which is merged per variable with
/// ours winning (see [`merge_env`]).
pub fn inherit_runtime(base: &ImageConfig, ours: Map<String, Value>) -> Result<Map<String, Value>> {
    let mut merged = base.config.clone().unwrap_or_default();
    merged.retain(|_, value| !value.is_null());
    let base_env = strings(merged.get("Env").unwrap_or(&Value::Null));
    if let Some(bad) = base_env.iter().find(|e| !e.split_once('=').is_some_and(|(name, _)| !name.is_empty()))
    {
        return Err(Error::argument(
            "fromImage",
            format!("the base image's Env holds {bad:?}, which is not of the form NAME=value"),
        ));
    }
    let our_env = ours.get("Env").map(strings).unwrap_or_default();
    merged.extend(ours);
    if !base_env.is_empty() || !our_env.is_empty() {
        merged.insert("Env".into(), merge_env(&base_env, &our_env)?.into());
    }
    Ok(merged)
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

/// What the image config says about the image as a whole.
#[derive(Debug, Clone)]
pub struct ImageMeta {
    /// GOARCH name.
    pub architecture: String,
    /// CPU variant, if any.
    pub variant: Option<String>,
    /// RFC 3339 creation time.
    pub created: String,
}

/// The complete image config for layers with `diff_ids`, one history entry each.
pub fn image_config(
    meta: &ImageMeta,
    runtime: &Map<String, Value>,
    diff_ids: &[Digest],
    comments: &[String],
) -> ImageConfig {
    let history = comments.iter().map(|c| History {
        comment: Some(c.clone()),
        created: Some(meta.created.clone()),
        created_by: Some("stowage".into()),
        extra: Map::new(),
    });
    ImageConfig {
        architecture: Some(meta.architecture.clone()),
        config: Some(runtime.clone()),
        created: Some(meta.created.clone()),
        history: Some(history.collect()),
        os: Some("linux".into()),
        rootfs: RootFs { diff_ids: diff_ids.to_vec(), kind: "layers".into() },
        variant: meta.variant.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn store_paths_a_config_mentions() {
        let hash = "0123456789abcdfghijklmnpqrsvwxyz";
        let config = json!({
            "Cmd": [format!("/s/store/{hash}-hello-2.12/bin/hello"), "--greeting"],
            "Env": [format!("A=/s/store/{hash}-a:/s/store/{hash}-b.d"), format!("B=/other/{hash}-c")],
            "Labels": {"x": format!("/s/store/{hash}-hello-2.12")},
            "User": format!("/s/store/{hash}"),
        });
        assert_eq!(
            referenced_store_paths(&config, "/s/store"),
            [
                format!("/s/store/{hash}-a"),
                format!("/s/store/{hash}-b.d"),
                format!("/s/store/{hash}-hello-2.12")
            ]
        );
    }

    fn env(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn env_last_value_wins_first_position_stays() {
        assert_eq!(
            merge_env(&[], &env(&["PATH=/a", "X=1", "PATH=/b", "Y=", "X=2"])).unwrap(),
            env(&["PATH=/b", "X=2", "Y="])
        );
        assert_eq!(
            merge_env(&env(&["PATH=/base", "LANG=C"]), &env(&["PATH=/mine", "A=b=c"])).unwrap(),
            env(&["PATH=/mine", "LANG=C", "A=b=c"])
        );
    }

    #[test]
    fn bad_env_entries_are_named() {
        let err = merge_env(&[], &env(&["A=1", "JUSTNAME"])).unwrap_err().to_string();
        assert_eq!(err, "argument 'config.Env[1]' \"JUSTNAME\" is not of the form NAME=value");
        assert!(merge_env(&[], &env(&["=x"])).is_err());
    }

    #[test]
    fn inheriting_from_a_base() {
        let config = |json: Value| -> ImageConfig {
            let mut json = json;
            json["rootfs"] = json!({ "type": "layers", "diff_ids": [] });
            serde_json::from_value(json).unwrap()
        };
        let base = config(json!({ "config": {
            "Env": ["PATH=/base/bin", "LANG=C"], "Cmd": ["/base"], "WorkingDir": "/srv",
            "Labels": {"from": "base"}, "User": null, "Hostname": "kept" } }));
        let ours =
            normalise_runtime_config(&json!({ "Env": ["PATH=/mine", "X=1"], "Cmd": ["/mine"] })).unwrap();
        let merged = inherit_runtime(&base, ours).unwrap();
        assert_eq!(merged["Env"], json!(["PATH=/mine", "LANG=C", "X=1"]));
        assert_eq!(merged["Cmd"], json!(["/mine"]));
        assert_eq!(merged["WorkingDir"], "/srv");
        assert_eq!(merged["Labels"], json!({"from": "base"}));
        assert_eq!(merged["Hostname"], "kept");
        assert!(!merged.contains_key("User"));
        assert_eq!(inherit_runtime(&config(json!({})), Map::new()).unwrap(), Map::new());
        let err =
            inherit_runtime(&config(json!({ "config": { "Env": ["BROKEN"] } })), Map::new()).unwrap_err();
        assert!(err.to_string().contains("the base image's Env holds \"BROKEN\""), "{err}");
    }

    #[test]
    fn runtime_config_checks_fields() {
        let ok = normalise_runtime_config(&json!({
            "Cmd": ["/bin/sh"], "Env": ["A=1", "A=2"], "ExposedPorts": {"80/tcp": {}},
            "Labels": {"a": "b"}, "WorkingDir": "/", "User": null,
        }))
        .unwrap();
        assert_eq!(ok["Env"], json!(["A=2"]));
        assert!(!ok.contains_key("User"));
        assert!(normalise_runtime_config(&Value::Null).unwrap().is_empty(), "config = null: none");
        for (config, needle) in [
            (json!({"Cmd": "/bin/sh"}), "argument 'config.Cmd' must be a list of strings"),
            (json!({"Entrypiont": []}), "argument 'config.Entrypiont' is not a field of an image config"),
            (
                json!({"ExposedPorts": {"80/tcp": 1}}),
                "argument 'config.ExposedPorts' must be a set whose values are { }",
            ),
            (json!({"Labels": {"a": 1}}), "argument 'config.Labels' must be a set of strings"),
            (json!([]), "argument 'config' is not a set"),
        ] {
            let err = normalise_runtime_config(&config).unwrap_err().to_string();
            assert!(err.starts_with(needle), "{err}");
        }
    }

    #[test]
    fn config_document() {
        let meta = ImageMeta {
            architecture: "arm".into(),
            variant: Some("v7".into()),
            created: "1970-01-01T00:00:01Z".into(),
        };
        let diff_id = Digest::of(b"layer");
        let doc = image_config(&meta, &Map::new(), &[diff_id], &["layer".into()]);
        // the bytes stowage has always written: keys sorted, every field there
        let expected = json!({ "architecture": "arm", "config": {}, "created": "1970-01-01T00:00:01Z",
            "history": [{ "comment": "layer", "created": "1970-01-01T00:00:01Z", "created_by": "stowage" }],
            "os": "linux", "rootfs": { "diff_ids": [diff_id.to_string()], "type": "layers" }, "variant": "v7" });
        assert_eq!(serde_json::to_string(&doc).unwrap(), expected.to_string());
    }
}
