//! Credentials for a registry: `--creds USER:PASSWORD`, else the first auth file that has the
//! registry — `--authfile`, `$REGISTRY_AUTH_FILE`, podman's
//! `$XDG_RUNTIME_DIR/containers/auth.json`, Docker's `$DOCKER_CONFIG/config.json`
//! (`~/.docker/config.json`) — with Docker Hub's many names taken as one. An auth file gives
//! them as Docker reads it: from the credential helper named for the registry (`credHelpers`),
//! else its `auths` entry, else the default helper (`credsStore`); a helper
//! (`docker-credential-NAME get`) that fails is an error naming it.

use crate::registry::access::Access;
use base64::Engine as _;
use std::path::PathBuf;

/// A user name and password, and where they were found (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) from: String,
}

/// The credentials for `host`: `--creds`, else the first auth file that has some for it.
pub(crate) fn credentials(host: &str, access: &Access) -> std::result::Result<Option<Credentials>, String> {
    if let Some(creds) = &access.creds {
        let (user, password) = creds.split_once(':').ok_or("--creds must be USER:PASSWORD")?;
        return Ok(Some(Credentials {
            user: user.into(),
            password: password.into(),
            from: "--creds".into(),
        }));
    }
    for (file, required) in auth_files(access) {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(_) if !required => continue,
            Err(e) => return Err(format!("auth file {}: {e}", file.display())),
        };
        let parsed: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("auth file {}: not JSON: {e}", file.display()))?;
        if let Some(found) = in_auth_file(&parsed, &file.display().to_string(), host)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The credentials for `host` that the auth file `from` (its JSON, `config`) gives, in Docker's
/// order: the credential helper its `credHelpers` names for the host, else its `auths` entry,
/// else the default helper, `credsStore`.
fn in_auth_file(
    config: &serde_json::Value,
    from: &str,
    host: &str,
) -> std::result::Result<Option<Credentials>, String> {
    let of_host = |section: &str| {
        let entries = config[section].as_object()?;
        entries.iter().find(|(key, _)| same_registry(key, host)).map(|(_, value)| value)
    };
    if let Some(helper) = of_host("credHelpers").and_then(|h| h.as_str()) {
        return from_helper(helper, &format!("credHelpers of {from}"), host);
    }
    let entry = of_host("auths");
    if let Some(found) = entry.map(|entry| auths_entry(entry, from, host)).transpose()?.flatten() {
        return Ok(Some(found));
    }
    match config["credsStore"].as_str().filter(|s| !s.is_empty()) {
        Some(helper) => from_helper(helper, &format!("credsStore of {from}"), host),
        None if entry.is_some() => Err(format!(
            "auth file {from}: the entry for {host} has neither \"auth\" nor \"username\" and \"password\", \
             and no credential helper is named (\"credHelpers\", \"credsStore\")"
        )),
        None => Ok(None),
    }
}

/// The user name and password of an `auths` entry of the auth file `from`, if it has them.
fn auths_entry(
    entry: &serde_json::Value,
    from: &str,
    host: &str,
) -> std::result::Result<Option<Credentials>, String> {
    let (user, password) = if let Some(encoded) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                format!("auth file {from}: the \"auth\" of {host} is not base64 of USER:PASSWORD")
            })?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("auth file {from}: the \"auth\" of {host} is not USER:PASSWORD"))?;
        (user.to_owned(), password.to_owned())
    } else if let (Some(user), Some(password)) = (entry["username"].as_str(), entry["password"].as_str()) {
        (user.to_owned(), password.to_owned())
    } else {
        return Ok(None);
    };
    Ok(Some(Credentials { user, password, from: from.to_owned() }))
}

/// What a credential helper says when it has nothing for the registry (and exits 1): no
/// credentials, as Docker takes it.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// The credentials the credential helper `helper` (`docker-credential-HELPER get`, named by
/// `named_by`) has for `host`, as Docker and podman run it: the registry on its stdin, JSON on
/// its stdout.
fn from_helper(helper: &str, named_by: &str, host: &str) -> std::result::Result<Option<Credentials>, String> {
    let program = format!("docker-credential-{helper}");
    let fail = |problem: String| format!("credential helper {program} ({named_by}): {problem}");
    // Docker Hub's credentials are kept under its old index's URL.
    let hub = "docker.io";
    let server = if same_registry(hub, host) { "https://index.docker.io/v1/" } else { host };
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot be run (is it on PATH?): {e}")))?;
    // A helper that does not read its input fails by what it says, not by a broken pipe here.
    let _ = child.stdin.take().map(|mut stdin| std::io::Write::write_all(&mut stdin, server.as_bytes()));
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        if stdout.trim() == HELPER_NOT_FOUND {
            return Ok(None);
        }
        let said = [stderr.trim(), stdout.trim()].into_iter().find(|s| !s.is_empty()).unwrap_or("nothing");
        return Err(fail(format!("{} for {host}; it said: {}", out.status, clip(said))));
    }
    let (user, password) =
        helper_answer(&out.stdout).map_err(|problem| fail(format!("for {host}: {problem}")))?;
    Ok(Some(Credentials { user, password, from: format!("credential helper {program}") }))
}

/// The user name and secret of a credential helper's answer,
/// `{"ServerURL":…,"Username":…,"Secret":…}`.
fn helper_answer(stdout: &[u8]) -> std::result::Result<(String, String), String> {
    let parsed: serde_json::Value = serde_json::from_slice(stdout)
        .map_err(|_| format!("it answered no JSON: {}", clip(String::from_utf8_lossy(stdout).trim())))?;
    let field = |name: &str| {
        parsed[name].as_str().map(str::to_owned).ok_or_else(|| format!("its answer has no \"{name}\" string"))
    };
    let (user, secret) = (field("Username")?, field("Secret")?);
    if user == "<token>" {
        // an OAuth refresh token, for a token service's OAuth endpoint, which stowage does not speak
        return Err("it gave an identity token (Username \"<token>\"), which stowage does not use: \
                    store a user name and password (or an access token as the password)"
            .into());
    }
    Ok((user, secret))
}

/// `text`, cut to a few hundred characters for an error message.
fn clip(text: &str) -> String {
    const MOST: usize = 400;
    match text.char_indices().nth(MOST) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The auth files to look in, in order, each with whether it must exist.
fn auth_files(access: &Access) -> Vec<(PathBuf, bool)> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut files = Vec::new();
    if let Some(file) = &access.auth_file {
        files.push((file.clone(), true));
    }
    if let Some(file) = env("REGISTRY_AUTH_FILE") {
        files.push((file, true));
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR") {
        files.push((dir.join("containers/auth.json"), false));
    }
    if let Some(dir) = env("DOCKER_CONFIG").or_else(|| env("HOME").map(|h| h.join(".docker"))) {
        files.push((dir.join("config.json"), false));
    }
    files
}

/// Whether an auth file's key (`host:port`, `https://host/v1/`) names `host`.
fn same_registry(key: &str, host: &str) -> bool {
    let key = key.trim_start_matches("https://").trim_start_matches("http://");
    let key = key.split('/').next().unwrap_or(key);
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    key == host || (hub(key) && hub(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_file_entries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        std::fs::write(
            &file,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},"127.0.0.1:5000":{"username":"u","password":"p:q"},"bad.example.com":{"auth":"%%%"}}}"#,
        )
        .unwrap();
        let access = Access { auth_file: Some(file.clone()), ..Access::default() };
        let hub = credentials("registry-1.docker.io", &access).unwrap().unwrap();
        assert_eq!((hub.user.as_str(), hub.password.as_str()), ("hub", "secret"));
        let local = credentials("127.0.0.1:5000", &access).unwrap().unwrap();
        assert_eq!((local.user.as_str(), local.password.as_str()), ("u", "p:q"));
        assert!(credentials("bad.example.com", &access).unwrap_err().contains("not base64"));
        let given = Access { creds: Some("a:b".into()), ..access.clone() };
        assert_eq!(credentials("127.0.0.1:5000", &given).unwrap().unwrap().from, "--creds");
        let missing = Access { auth_file: Some(dir.path().join("none.json")), ..Access::default() };
        assert!(credentials("x", &missing).unwrap_err().contains("none.json"));
    }

    #[test]
    fn helpers_come_in_docker_order() {
        let config = serde_json::json!({
            "auths": { "a.example": { "auth": "dTpw" }, "b.example": { "auth": "dTpw" }, "c.example": {} },
            "credHelpers": { "a.example": "stowage-no-such-helper" },
            "credsStore": "stowage-no-such-store",
        });
        // the host's helper before its auths entry
        let err = in_auth_file(&config, "config.json", "a.example").unwrap_err();
        assert!(err.starts_with("credential helper docker-credential-stowage-no-such-helper (credHelpers of config.json): cannot be run"), "{err}");
        // an auths entry with credentials before the default helper
        let found = in_auth_file(&config, "config.json", "b.example").unwrap().unwrap();
        assert_eq!(
            (found.user.as_str(), found.password.as_str(), found.from.as_str()),
            ("u", "p", "config.json")
        );
        // an entry without them, or none, goes to the default helper
        for host in ["c.example", "d.example"] {
            let err = in_auth_file(&config, "config.json", host).unwrap_err();
            assert!(
                err.starts_with(
                    "credential helper docker-credential-stowage-no-such-store (credsStore of config.json)"
                ),
                "{err}"
            );
        }
        let bare = serde_json::json!({ "auths": { "c.example": {} } });
        assert!(in_auth_file(&bare, "f", "c.example").unwrap_err().contains("no credential helper is named"));
        assert_eq!(in_auth_file(&bare, "f", "d.example").unwrap(), None);
    }

    #[test]
    fn helper_answers() {
        let answer = br#"{"ServerURL":"r.example","Username":"u","Secret":"s:t"}"#;
        assert_eq!(helper_answer(answer).unwrap(), ("u".to_owned(), "s:t".to_owned()));
        assert_eq!(helper_answer(b"oops\n").unwrap_err(), "it answered no JSON: oops");
        assert_eq!(helper_answer(br#"{"Username":"u"}"#).unwrap_err(), "its answer has no \"Secret\" string");
        let token = br#"{"ServerURL":"r.example","Username":"<token>","Secret":"refresh"}"#;
        assert!(helper_answer(token).unwrap_err().contains("identity token"));
        assert_eq!(clip(&"x".repeat(1000)).chars().count(), 401);
    }

    #[test]
    fn bad_creds_are_named() {
        let creds = Access { creds: Some("no-colon".into()), ..Access::default() };
        assert_eq!(credentials("h", &creds).unwrap_err(), "--creds must be USER:PASSWORD");
    }
}
