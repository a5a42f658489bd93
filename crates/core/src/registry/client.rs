//! Talking to a registry over the OCI distribution API: the connection (TLS, or plain HTTP
//! where allowed), credentials and the authentication handshakes, and errors that say what the
//! registry refused. `stowage push` and `pullImage` share it.
//!
//! - **Scheme**: HTTPS, verified as [`crate::registry::tls`] says. For `localhost` and
//!   loopback addresses plain HTTP is used when the registry does not speak TLS, as Docker
//!   does; for any other host only when asked (`--plain-http`).
//! - **Credentials**: as [`crate::registry::credentials`] finds them.
//! - **Authentication**: the registry's `401` names the scheme (`WWW-Authenticate`): `Basic`
//!   sends the credentials; `Bearer realm=…,service=…,scope=…` fetches a token from the realm
//!   (with the credentials, if any) and sends that.
//! - **Time**: every request is held to [`Timeouts`]: a deadline for requests without a large
//!   body, a stall timeout and a minimum rate for blobs.
//! - **Size**: a document read into memory (a manifest, a config, a token's answer) has at most
//!   [`DOCUMENT_LIMIT`] bytes; no more than that, and one byte past it, is read, and nothing
//!   of one whose `Content-Length` says it has more.

use crate::registry::access::Access;
use crate::registry::credentials::{credentials, Credentials};
use crate::registry::timeouts::Timeouts;
use crate::registry::tls::tls_config;
use crate::{Error, Result};
use base64::Engine as _;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// The largest document (a manifest, a config, a token service's answer) read into memory.
pub const DOCUMENT_LIMIT: u64 = 16 << 20;

/// The most of an error answer's body read, for its messages.
const ERROR_BODY_LIMIT: u64 = 4096;

/// The most redirects a request takes (ureq's default, named here for messages): a registry
/// redirects a blob to its storage once.
const MAX_REDIRECTS: u32 = 5;

/// A connection to one registry.
pub struct Registry {
    /// `host[:port]`, as given.
    host: String,
    /// `https://host[:port]` or `http://…`.
    origin: String,
    /// For requests with a deadline; keeps connections for the next.
    agent: ureq::Agent,
    /// For blobs' requests (see [`Registry::blob_request`]); keeps no connection.
    blob_agent: ureq::Agent,
    timeouts: Timeouts,
    credentials: Option<Credentials>,
    /// The `Authorization` header the last handshake earned.
    authorization: Mutex<Option<String>>,
}

impl Registry {
    /// Connects to the registry `host` (`host[:port]`): picks the scheme (asking `/v2/` where
    /// plain HTTP is allowed) and finds the credentials for it.
    pub fn connect(host: &str, access: &Access) -> Result<Registry> {
        let fail = |problem: String| Error::Registry { registry: host.to_owned(), problem };
        let tls = Arc::new(tls_config(host, access).map_err(fail)?);
        let timeout = access.timeouts.timeout;
        // A blob has no deadline: its sockets' timeouts are the stall timeout (a request with
        // a deadline shortens them to what is left of it).
        let agent = || {
            ureq::AgentBuilder::new()
                .tls_config(tls.clone())
                .redirects(MAX_REDIRECTS)
                .timeout_connect(timeout)
                .timeout_read(timeout)
                .timeout_write(timeout)
        };
        let credentials = credentials(host, access).map_err(fail)?;
        let mut registry = Registry {
            host: host.to_owned(),
            origin: format!("https://{host}"),
            agent: agent().build(),
            // ureq clears a connection's socket timeouts when it returns to the pool, and a
            // request without a deadline does not set them again: a blob goes over a
            // connection of its own.
            blob_agent: agent().max_idle_connections(0).build(),
            timeouts: access.timeouts,
            credentials,
            authorization: Mutex::new(None),
        };
        if access.plain_http {
            registry.origin = format!("http://{host}");
        } else if is_loopback(host) {
            // Docker's rule for a registry on this machine: HTTPS if it speaks it, else HTTP.
            match registry.request("GET", &registry.url("/v2/")).call() {
                Ok(_) | Err(ureq::Error::Status(..)) => {}
                Err(tls_error) => registry.origin = registry.plain_origin(tls_error)?,
            }
        }
        Ok(registry)
    }

    /// The origin of a registry on this machine whose HTTPS failed (`tls_error` says how):
    /// plain HTTP, if it answers there as a registry does.
    fn plain_origin(&self, tls_error: ureq::Error) -> Result<String> {
        let plain = format!("http://{}", self.host);
        let probe = format!("{plain}/v2/");
        let not_registry = |answer: String| Error::Registry {
            registry: self.host.clone(),
            problem: format!("connecting: it does not speak HTTPS, and over plain HTTP GET {probe} {answer}"),
        };
        match self.request("GET", &probe).call() {
            Ok(r) if (200..300).contains(&r.status()) => Ok(plain),
            Err(ureq::Error::Status(401, _)) => Ok(plain),
            // It speaks HTTP, but not as a registry does. (An HTTPS server answers plain HTTP
            // with an error too: then the handshake's error is the one to say.)
            Ok(response) | Err(ureq::Error::Status(_, response)) if !spoke_tls(&tls_error) => {
                Err(not_registry(format!("answered {}", self.status_problem(response))))
            }
            Err(ureq::Error::Transport(t)) if t.kind() == ureq::ErrorKind::TooManyRedirects => {
                Err(not_registry(redirect_loop()))
            }
            _ => Err(self.failure("connecting", tls_error)),
        }
    }

    /// The URL of `path` (`/v2/…`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// A request for `url` without a large body, carrying the authorization earned so far:
    /// it has the deadline of [`Timeouts::timeout`].
    pub fn request(&self, method: &str, url: &str) -> ureq::Request {
        self.authorized(self.agent.request(method, url).timeout(self.timeouts.timeout))
    }

    /// A request for `url` that sends or fetches a blob, carrying the authorization earned so
    /// far: it has no deadline, but fails when it stalls; its body goes through
    /// [`Registry::pace`].
    pub fn blob_request(&self, method: &str, url: &str) -> ureq::Request {
        self.authorized(self.blob_agent.request(method, url))
    }

    /// `request` with the authorization earned so far.
    fn authorized(&self, request: ureq::Request) -> ureq::Request {
        match self.authorization.lock().expect("not poisoned").as_deref() {
            Some(authorization) => request.set("Authorization", authorization),
            None => request,
        }
    }

    /// How long its requests may take.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// `body`, a blob's, sent or fetched, held to the minimum rate.
    pub fn pace<R: Read>(&self, body: R) -> crate::registry::timeouts::Paced<R> {
        self.timeouts.pace(body)
    }

    /// Sends `method url` with `headers` and `body`; a `401` is answered by the handshake the
    /// registry asks for, and the request sent again.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::result::Result<ureq::Response, Failure> {
        self.authenticated(|| {
            let request = headers.iter().fold(self.request(method, url), |r, (k, v)| r.set(k, v));
            let answer = if body.is_empty() && method != "PUT" && method != "POST" {
                request.call()
            } else {
                request.send_bytes(body)
            };
            answer.map_err(Failure::from)
        })
    }

    /// GETs the blob at `url` (see [`Registry::blob_request`]), authenticating as
    /// [`Registry::send`] does.
    pub fn get_blob(&self, url: &str) -> std::result::Result<ureq::Response, Failure> {
        self.authenticated(|| self.blob_request("GET", url).call().map_err(Failure::from))
    }

    /// What `attempt` gets; a `401` is answered by the handshake the registry asks for, and
    /// `attempt` made again.
    fn authenticated(
        &self,
        attempt: impl Fn() -> std::result::Result<ureq::Response, Failure>,
    ) -> std::result::Result<ureq::Response, Failure> {
        let first = attempt();
        if let Err(Failure::Http(e)) = &first {
            if let ureq::Error::Status(401, response) = &**e {
                let challenge = response.header("WWW-Authenticate").unwrap_or_default().to_owned();
                self.authenticate(&challenge)?;
                return attempt();
            }
        }
        first
    }

    /// Earns the authorization `challenge` (a `WWW-Authenticate` header) asks for.
    fn authenticate(&self, challenge: &str) -> std::result::Result<(), Failure> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let params = challenge_params(params);
        let param =
            |name: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let basic = self.credentials.as_ref().map(|c| {
            let pair = format!("{}:{}", c.user, c.password);
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        let authorization = if scheme.eq_ignore_ascii_case("basic") {
            basic.ok_or_else(|| Failure::Refused(self.no_credentials()))?
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let realm = param("realm").ok_or_else(|| {
                Failure::Refused(format!("its Bearer challenge names no realm: {challenge}"))
            })?;
            let mut request = self.agent.get(realm).timeout(self.timeouts.timeout);
            for name in ["service", "scope"] {
                if let Some(value) = param(name) {
                    request = request.query(name, value);
                }
            }
            if let Some(basic) = &basic {
                request = request.set("Authorization", basic);
            }
            let asking = |problem: String| Failure::Refused(format!("asking {realm} for a token: {problem}"));
            let token = match request.call() {
                Ok(response) => {
                    let bytes = read_document(response, DOCUMENT_LIMIT)
                        .map_err(|e| asking(self.timeouts.ran_out(&e).unwrap_or_else(|| e.to_string())))?
                        .ok_or_else(|| {
                            Failure::Refused(format!(
                                "the token service {realm} answered more than {DOCUMENT_LIMIT} bytes; a token is a few kilobytes"
                            ))
                        })?;
                    token_in(&bytes)
                        .map_err(|_| Failure::Refused(format!("the token service {realm} answered no JSON")))?
                        .ok_or_else(|| Failure::Refused(format!("the token service {realm} gave no token")))?
                }
                Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                    return Err(Failure::Refused(match &self.credentials {
                        Some(c) => format!(
                            "the token service {realm} refused the credentials (from {}) with {code}",
                            c.from
                        ),
                        None => format!(
                            "the token service {realm} refused an anonymous token ({code}); {}",
                            self.no_credentials()
                        ),
                    }))
                }
                Err(ureq::Error::Status(_, response)) => {
                    return Err(asking(format!("it answered {}", self.status_problem(response))))
                }
                Err(ureq::Error::Transport(t)) => return Err(asking(self.transport_problem(&t))),
            };
            format!("Bearer {token}")
        } else {
            return Err(Failure::Refused(format!(
                "it asks for authentication stowage does not speak: {challenge:?}"
            )));
        };
        *self.authorization.lock().expect("not poisoned") = Some(authorization);
        Ok(())
    }

    /// What an answer with an error status says: `CODE STATUS: REGISTRY ERRORS`.
    fn status_problem(&self, response: ureq::Response) -> String {
        let (code, status) = (response.status(), response.status_text().to_owned());
        let mut body = String::new();
        // A blob's answer has no deadline: its error body is held to the minimum rate.
        let _ = self.pace(response.into_reader()).take(ERROR_BODY_LIMIT).read_to_string(&mut body);
        format!("{code} {status}{}", registry_errors(&body))
    }

    /// What went wrong with a request that got no answer: time ran out, it was redirected in
    /// a loop, or the connection failed.
    fn transport_problem(&self, t: &ureq::Transport) -> String {
        match self.timeouts.ran_out(t) {
            Some(ran_out) => ran_out,
            None if t.kind() == ureq::ErrorKind::TooManyRedirects => {
                format!("{}: it {}", t.url().map_or("", |u| u.as_str()), redirect_loop())
            }
            None => t.to_string(),
        }
    }

    fn no_credentials(&self) -> String {
        format!(
            "it needs credentials, and none were found for {}: give --creds USER:PASSWORD or --authfile, \
             or log in (podman login, docker login)",
            self.host
        )
    }

    /// The error for a failed request: what was being done, and what the registry said.
    pub fn failure(&self, what: &str, failure: impl Into<Failure>) -> Error {
        let problem = match failure.into() {
            Failure::Refused(why) => format!("{what}: {why}"),
            Failure::Http(e) => match *e {
                ureq::Error::Status(401, _) => match &self.credentials {
                    Some(c) => {
                        format!("{what}: authentication failed: the credentials from {} were refused", c.from)
                    }
                    None => format!("{what}: {}", self.no_credentials()),
                },
                ureq::Error::Status(_, response) => format!("{what}: {}", self.status_problem(response)),
                ureq::Error::Transport(t) => format!("{what}: {}", self.transport_problem(&t)),
            },
            Failure::Transfer(e) => match self.timeouts.ran_out(&e) {
                Some(ran_out) => format!("{what}: {ran_out}"),
                None => format!("{what}: the transfer broke off: {e}"),
            },
        };
        Error::Registry { registry: self.host.clone(), problem }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    /// The request got an error status, or never got an answer.
    Http(Box<ureq::Error>),
    /// An authentication handshake failed, as said.
    Refused(String),
    /// The body of an answer broke off, or took too long.
    Transfer(std::io::Error),
}

impl From<ureq::Error> for Failure {
    fn from(e: ureq::Error) -> Self {
        Failure::Http(Box::new(e))
    }
}

impl Failure {
    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Http(e) => match **e {
                ureq::Error::Status(code, _) => Some(code),
                ureq::Error::Transport(_) => None,
            },
            Failure::Refused(_) | Failure::Transfer(_) => None,
        }
    }
}

/// The body of `response`, if it has at most `limit` bytes (`None` if it has more, or its
/// `Content-Length` says so): no more than one byte past the limit is read.
pub fn read_document(response: ureq::Response, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    if response.header("Content-Length").and_then(|n| n.trim().parse::<u64>().ok()).is_some_and(|n| n > limit)
    {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    response.into_reader().take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// What a request that ran into [`MAX_REDIRECTS`] did.
fn redirect_loop() -> String {
    format!("redirects in a loop (stowage gives up at {MAX_REDIRECTS} redirects)")
}

/// The messages of a registry's JSON error body (`{"errors":[{"code","message"}]}`), as
/// `: CODE message; …`, or nothing. Public for the fuzz targets.
#[doc(hidden)]
pub fn registry_errors(body: &str) -> String {
    let parsed: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let messages: Vec<String> = parsed["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!("{} {}", e["code"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""))
                .trim()
                .to_owned()
        })
        .collect();
    if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    }
}

/// The token in a token service's answer `body` (`token`, or OAuth2's `access_token`), if it
/// gives one; an error if the answer is no JSON. Public for the fuzz targets.
#[doc(hidden)]
pub fn token_in(body: &[u8]) -> serde_json::Result<Option<String>> {
    let body: serde_json::Value = serde_json::from_slice(body)?;
    Ok(body["token"].as_str().or(body["access_token"].as_str()).map(str::to_owned))
}

/// `key="value", key=value` pairs of a challenge; quoted values may hold commas. Public for the
/// fuzz targets.
#[doc(hidden)]
pub fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (quoted[..end].to_owned(), quoted.get(end + 1..).unwrap_or(""))
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            }
        };
        params.push((key, value));
        rest = after.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    params
}

/// Whether `error`, of a request over HTTPS, came from a server that speaks TLS (and refused
/// the handshake, or was refused, as for a certificate not trusted), not from one that does not.
fn spoke_tls(error: &ureq::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        // ureq hands rustls's error on inside an I/O error.
        let io = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        if let Some(tls) = io.and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            // what rustls says of bytes that are not TLS at all
            return !matches!(tls, rustls::Error::InvalidMessage(_));
        }
        cause = error.source();
    }
    false
}

/// Whether `host` (`host[:port]`) is this machine, where plain HTTP is allowed.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let params = challenge_params(
            r#"realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push""#,
        );
        assert_eq!(
            params,
            [
                ("realm".to_owned(), "https://auth.example.com/token".to_owned()),
                ("service".to_owned(), "registry.example.com".to_owned()),
                ("scope".to_owned(), "repository:team/app:pull,push".to_owned()),
            ]
        );
        assert_eq!(challenge_params(r#"realm=x, charset="UTF-8""#).len(), 2);
        assert!(challenge_params("").is_empty());
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["registry.example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn error_bodies() {
        let body =
            r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#;
        assert_eq!(registry_errors(body), ": BLOB_UNKNOWN blob unknown to registry");
        assert_eq!(registry_errors("<html>"), "");
    }
}
