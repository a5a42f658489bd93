//! Credentials for a registry: `--creds USER:PASSWORD`, else the first auth file that has the
//! registry — `--authfile`, `$REGISTRY_AUTH_FILE`, podman's
//! `$XDG_RUNTIME_DIR/containers/auth.json`, Docker's `$DOCKER_CONFIG/config.json`
//! (`~/.docker/config.json`) — with Docker Hub's many names taken as one.

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

/// The credentials for `host`: `--creds`, else the first auth file that has an entry for it.
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
        let Some(auths) = parsed["auths"].as_object() else { continue };
        let Some((_, entry)) = auths.iter().find(|(key, _)| same_registry(key, host)) else { continue };
        let from = file.display().to_string();
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
        } else if let (Some(user), Some(password)) = (entry["username"].as_str(), entry["password"].as_str())
        {
            (user.to_owned(), password.to_owned())
        } else {
            return Err(format!(
                "auth file {from}: the entry for {host} has neither \"auth\" nor \"username\" and \"password\" \
                 (credential helpers are not supported)"
            ));
        };
        return Ok(Some(Credentials { user, password, from }));
    }
    Ok(None)
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
    fn bad_creds_are_named() {
        let creds = Access { creds: Some("no-colon".into()), ..Access::default() };
        assert_eq!(credentials("h", &creds).unwrap_err(), "--creds must be USER:PASSWORD");
    }
}
