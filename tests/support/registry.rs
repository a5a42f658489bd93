//! Registries for the tests: Debian's `docker-registry` (distribution) on a free port of
//! 127.0.0.1 — plain HTTP, or TLS with a CA made here and htpasswd basic auth, or TLS with
//! bearer tokens from a token service of the test's own — and a proxy in front of one that
//! answers chosen requests with an error, or cuts them off, as a failing registry or network
//! would.

use super::run_ok;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// The test user of the registries with authentication.
pub const USER: &str = "tester";
/// Its password.
pub const PASSWORD: &str = "s3cret";

/// A registry of its own, storing into and logging to a temporary folder; stopped when
/// dropped.
pub struct Registry {
    dir: tempfile::TempDir,
    daemon: std::process::Child,
    pub port: u16,
    _tokens: Option<TokenService>,
}

impl Drop for Registry {
    /// Stops the registry, also when its test panicked: `make test` leaves no process behind.
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Registry {
    /// Plain HTTP, no authentication.
    pub fn start() -> Registry {
        Registry::start_with(|_, _| String::new(), None)
    }

    /// TLS (a certificate for 127.0.0.1 from [`Registry::ca`]) and htpasswd basic auth for
    /// [`USER`].
    pub fn start_tls_basic() -> Registry {
        Registry::start_with(
            |dir, _| {
                let hash = run_ok(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD])).stdout;
                std::fs::write(dir.join("htpasswd"), hash).unwrap();
                format!(
                    "{}auth:\n  htpasswd:\n    realm: stowage-test\n    path: {}\n",
                    tls_config(dir),
                    dir.join("htpasswd").display()
                )
            },
            None,
        )
    }

    /// TLS and bearer tokens, which a token service of this test gives [`USER`] (any scope)
    /// and anyone else for pulls only.
    pub fn start_tls_token() -> Registry {
        let dir = tempfile::Builder::new().prefix("stowage-tokens-").tempdir().unwrap();
        let tokens = TokenService::start(dir);
        let realm = tokens.realm();
        let bundle = tokens.cert.clone();
        Registry::start_with(
            move |dir, _| {
                format!(
                    "{}auth:\n  token:\n    realm: {realm}\n    service: stowage-test\n    issuer: stowage-test-issuer\n    rootcertbundle: {}\n",
                    tls_config(dir),
                    bundle.display()
                )
            },
            Some(tokens),
        )
    }

    fn start_with(extra: impl FnOnce(&Path, u16) -> String, tokens: Option<TokenService>) -> Registry {
        let dir = tempfile::Builder::new().prefix("stowage-registry-").tempdir().unwrap();
        let port = free_port();
        let extra = extra(dir.path(), port);
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let daemon = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (installed by make setup) starts");
        let registry = Registry { dir, daemon, port, _tokens: tokens };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return registry;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("docker-registry did not listen within 10 s; its log:\n{}", registry.log());
    }

    /// The CA that signed a TLS registry's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A folder holding only [`Registry::ca`], as skopeo's `--cert-dir` takes it.
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// skopeo's options for this registry: its CA, and [`USER`]'s credentials.
    pub fn skopeo_options(&self) -> Vec<String> {
        vec![format!("--cert-dir={}", self.cert_dir().display()), format!("--creds={USER}:{PASSWORD}")]
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// How many blob uploads were started (each `POST …/blobs/uploads/` in the access log).
    pub fn uploads(&self) -> usize {
        self.log().lines().filter(|l| l.contains("\"POST /v2/") && l.contains("/blobs/uploads/")).count()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes `image` (a stream script or an archive) here as `reference` (`team/app:v1`) with
    /// `stowage push ARGS`, with a blob cache of its own, and returns the manifest as the
    /// registry has it.
    pub fn push(&self, image: &Path, reference: &str, args: &[&str]) -> Vec<u8> {
        let dest = format!("docker://{}/{reference}", self.address());
        let cache = tempfile::tempdir().unwrap();
        run_ok(
            Command::new(super::builder())
                .arg("push")
                .args(args)
                .arg(image)
                .arg(&dest)
                .env("XDG_CACHE_HOME", cache.path()),
        );
        run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &dest])).stdout
    }

    /// The bytes of every blob the registry stores.
    pub fn stored_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| {
                    let path = entry.path();
                    if path.is_dir() {
                        walk(&path)
                    } else {
                        entry.metadata().map_or(0, |m| m.len())
                    }
                })
                .sum()
        }
        walk(&self.storage().join("blobs"))
    }

    /// The folder the registry stores blobs and repositories in.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data/docker/registry/v2")
    }

    /// The file the registry keeps the blob `digest` (`sha256:…`) in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage().join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

/// `stowage push IMAGE DEST`, its cache and home (where `.docker/config.json` is looked for) in
/// `home`.
pub fn push_command(image: &Path, dest: &str, home: &Path) -> Command {
    let mut cmd = Command::new(super::builder());
    cmd.arg("push").arg(image).arg(dest).env("XDG_CACHE_HOME", home).env("HOME", home);
    for var in ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd
}

/// The manifest at `at` (docker://…), after skopeo has copied the image (reading and checking
/// every blob).
pub fn inspect_and_copy(at: &str) -> serde_json::Value {
    inspect_and_copy_with(at, &[])
}

/// [`inspect_and_copy`], skopeo given `options` (`--creds`, `--cert-dir`) for the registry.
pub fn inspect_and_copy_with(at: &str, options: &[String]) -> serde_json::Value {
    let verify = options.iter().any(|o| o.starts_with("--cert-dir"));
    let tls: Vec<String> = if verify { vec![] } else { vec!["--tls-verify=false".into()] };
    let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw"]).args(&tls).args(options).arg(at));
    let copy = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:x", copy.path().join("l").display());
    let src: Vec<String> = tls.iter().chain(options).map(|o| o.replacen("--", "--src-", 1)).collect();
    run_ok(Command::new("skopeo").args(["copy", "-q"]).args(&src).arg(at).arg(&layout));
    serde_json::from_slice(&raw.stdout).unwrap()
}

/// The `http:` lines of a registry serving TLS with a certificate for 127.0.0.1, signed by a
/// CA made in `dir` (`ca.crt`).
fn tls_config(dir: &Path) -> String {
    let openssl = |args: &[&str]| run_ok(Command::new("openssl").current_dir(dir).args(args));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=stowage test CA"],
        ]
        .concat(),
    );
    openssl(
        &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]]
            .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    std::fs::create_dir(dir.join("certs")).unwrap();
    std::fs::copy(dir.join("ca.crt"), dir.join("certs/ca.crt")).unwrap();
    format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        dir.join("server.crt").display(),
        dir.join("server.key").display()
    )
}

/// A token service as distribution's `token` auth wants one: `GET /token?service&scope` with
/// optional basic auth answers `{"token": JWT}`, the JWT signed (RS256, by `openssl`) with a
/// key whose self-signed certificate is the registry's `rootcertbundle` (and in the token's
/// `x5c` header).
struct TokenService {
    /// Holds the signing key and certificate.
    _dir: tempfile::TempDir,
    cert: PathBuf,
    port: u16,
}

impl TokenService {
    fn start(dir: tempfile::TempDir) -> TokenService {
        run_ok(Command::new("openssl").current_dir(dir.path()).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "2",
            "-subj",
            "/CN=stowage test tokens",
        ]));
        let der = run_ok(Command::new("openssl").current_dir(dir.path()).args([
            "x509",
            "-in",
            "token.crt",
            "-outform",
            "DER",
        ]))
        .stdout;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let key = dir.path().join("token.key");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (key, der) = (key.clone(), der.clone());
                std::thread::spawn(move || answer_token(stream, &key, &der));
            }
        });
        let cert = dir.path().join("token.crt");
        TokenService { _dir: dir, cert, port }
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn answer_token(mut stream: TcpStream, key: &Path, der: &[u8]) {
    use base64::Engine as _;
    let head = read_head(&mut BufReader::new(stream.try_clone().unwrap()));
    let Some(head) = head else { return };
    let target = head.lines().next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_owned();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(|v| v.replace("%3A", ":").replace("%2C", ",").replace("%2F", "/"))
    };
    let user = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let v = v.trim().strip_prefix("Basic ")?;
        (k.eq_ignore_ascii_case("authorization"))
            .then(|| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .flatten()
    });
    let user = match user.map(|u| String::from_utf8_lossy(&u).into_owned()) {
        Some(pair) if pair == format!("{USER}:{PASSWORD}") => Some(USER),
        Some(_) => {
            let _ = stream
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        None => None,
    };
    let access: Vec<serde_json::Value> = param("scope")
        .into_iter()
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions.split(',').filter(|a| user.is_some() || *a == "pull").collect();
            Some(serde_json::json!({ "type": kind, "name": name, "actions": actions }))
        })
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [base64::engine::general_purpose::STANDARD.encode(der)] });
    let claims = serde_json::json!({
        "iss": "stowage-test-issuer", "sub": user.unwrap_or(""), "aud": param("service").unwrap_or_default(),
        "exp": now + 600, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", std::process::id()),
        "access": access,
    });
    let signing_input =
        format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let mut sign = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sign.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
    let signature = sign.wait_with_output().unwrap().stdout;
    let body =
        serde_json::json!({ "token": format!("{signing_input}.{}", b64url(&signature)), "expires_in": 600 })
            .to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Reads an HTTP request's or response's head, up to the empty line; `None` at the end.
fn read_head(reader: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" || line == "\n" {
            return Some(head);
        }
    }
}

/// A proxy in front of a registry that can answer chosen requests with an error, as a failing
/// registry would, or cut their connection half way through the body, as a broken network would;
/// it counts the body bytes each blob upload sent it. Stops when dropped.
pub struct FaultyProxy {
    pub port: u16,
    state: Arc<Mutex<ProxyState>>,
}

#[derive(Default)]
struct ProxyState {
    fault: Option<Fault>,
    /// How many requests the fault was served to.
    served: usize,
    /// The upload (its path, `/v2/…/blobs/uploads/UUID`) the fault was last served to.
    fired_on: Option<String>,
    /// What each upload (by its path) sent.
    uploads: BTreeMap<String, UploadSeen>,
}

/// What the client sent to one blob upload, through the proxy.
#[derive(Debug, Default, Clone)]
pub struct UploadSeen {
    /// The bytes of its bodies (`PATCH`, `PUT`) read from the client, passed on or not.
    pub body_bytes: u64,
    /// The digest its last `PUT` named.
    pub digest: Option<String>,
    /// The `Content-Range` of each of its `PATCH` requests, in turn.
    pub ranges: Vec<String>,
}

struct Fault {
    /// The methods it is served to.
    methods: Vec<String>,
    path_contains: String,
    /// Matching requests to let through first.
    skip: usize,
    /// How many times it is served.
    times: usize,
    /// After how much of the body: none, the whole body; else it is served only to requests
    /// with a larger body, the rest unread, as from a registry whose disk filled up.
    after: Option<u64>,
    /// The status answered; none: the connection is closed without an answer.
    status: Option<u16>,
    /// Whether what was read of a request whose connection is closed is passed on to the
    /// registry, its connection closed as well (as a broken network would); else nothing of it
    /// is (as by a proxy that takes a whole body before passing it on).
    pass_on: bool,
    /// Whether the request, its body read, is held unanswered until the client goes away.
    hold: bool,
}

impl FaultyProxy {
    pub fn start(upstream: u16) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<ProxyState>> = Arc::default();
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || proxy_connection(client, upstream, &state));
            }
        });
        FaultyProxy { port, state }
    }

    fn set(&self, methods: &str, path_contains: &str, skip: usize, fault: impl FnOnce(Fault) -> Fault) {
        let methods = methods.split('|').map(str::to_owned).collect();
        let base = Fault {
            methods,
            path_contains: path_contains.into(),
            skip,
            times: 1,
            after: None,
            status: Some(500),
            pass_on: false,
            hold: false,
        };
        self.state.lock().unwrap().fault = Some(fault(base));
    }

    /// Answers the request after the first `skip` requests `method …path_contains…` with a
    /// 500, once.
    pub fn fail(&self, method: &str, path_contains: &str, skip: usize) {
        self.set(method, path_contains, skip, |f| f);
    }

    /// Answers every request after the first `skip` requests `methods …path_contains…`
    /// (`PUT|PATCH`) with `status`, as a registry refusing them would.
    pub fn fail_always(&self, methods: &str, path_contains: &str, skip: usize, status: u16) {
        self.set(methods, path_contains, skip, |f| Fault { times: usize::MAX, status: Some(status), ..f });
    }

    /// [`FaultyProxy::fail_always`] with a 500 for requests whose body is larger than
    /// [`MID_BODY`], answering after its first [`MID_BODY`] bytes and closing the connection on
    /// the rest.
    pub fn fail_mid_body(&self, methods: &str, path_contains: &str, skip: usize) {
        self.set(methods, path_contains, skip, |f| Fault { times: usize::MAX, after: Some(MID_BODY), ..f });
    }

    /// Cuts the connection of the request after the first `skip` requests `method
    /// …path_contains…` with a body larger than `after` bytes, once, after reading `after`
    /// bytes of it; nothing of it reaches the registry.
    pub fn cut(&self, method: &str, path_contains: &str, skip: usize, after: u64) {
        self.set(method, path_contains, skip, |f| Fault { after: Some(after), status: None, ..f });
    }

    /// [`FaultyProxy::cut`], passing on to the registry what was read, and closing its
    /// connection too.
    pub fn cut_passing_on(&self, method: &str, path_contains: &str, skip: usize, after: u64) {
        self.set(method, path_contains, skip, |f| Fault {
            after: Some(after),
            status: None,
            pass_on: true,
            ..f
        });
    }

    /// Holds the request after the first `skip` requests `method …path_contains…`, once:
    /// its body is read, and it is never answered nor passed on (the client waits until it
    /// gives up, or is killed).
    pub fn hold(&self, method: &str, path_contains: &str, skip: usize) {
        self.set(method, path_contains, skip, |f| Fault { hold: true, ..f });
    }

    /// Serves no more faults.
    pub fn heal(&self) {
        self.state.lock().unwrap().fault = None;
    }

    /// Whether the fault has been served.
    pub fn fired(&self) -> bool {
        self.state.lock().unwrap().served > 0
    }

    /// The upload the fault was last served to, and what it sent in all.
    pub fn fired_on(&self) -> Option<UploadSeen> {
        let state = self.state.lock().unwrap();
        state.fired_on.as_ref().map(|path| state.uploads[path].clone())
    }

    /// What every blob upload sent, by its path.
    pub fn uploads(&self) -> BTreeMap<String, UploadSeen> {
        self.state.lock().unwrap().uploads.clone()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// How much of a body [`FaultyProxy::fail_mid_body`] reads before it answers.
pub const MID_BODY: u64 = 64 << 10;

/// Serves one request of a client connection over an upstream connection of its own.
fn proxy_connection(client: TcpStream, upstream: u16, state: &Mutex<ProxyState>) {
    // A TLS handshake (Docker's rule: try HTTPS first on this machine) is not HTTP: closing
    // fails it, as a plain HTTP registry's answer does.
    let mut first = [0u8; 1];
    if client.peek(&mut first).map_or(true, |n| n == 0 || first[0] == 0x16) {
        return;
    }
    let mut from_client = BufReader::new(client.try_clone().unwrap());
    let mut to_client = client;
    let Some(head) = read_head(&mut from_client) else { return };
    let request_line = head.lines().next().unwrap_or("").to_owned();
    let mut words = request_line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let length: u64 = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let upload = (matches!(method, "PATCH" | "PUT") && path.contains("/blobs/uploads/")).then_some(path);
    // Whether to fire (and how), and how much of the body to read.
    let (fire, read) = {
        let mut state = state.lock().unwrap();
        let fire = match state.fault.as_mut() {
            Some(f)
                if f.methods.iter().any(|m| m == method)
                    && target.contains(&f.path_contains)
                    && f.after.map_or(true, |after| length > after) =>
            {
                if f.skip == 0 {
                    f.times -= 1;
                    Some((f.status, f.after.unwrap_or(length), f.pass_on, f.hold))
                } else {
                    f.skip -= 1;
                    None
                }
            }
            _ => None,
        };
        if state.fault.as_ref().is_some_and(|f| f.times == 0) {
            state.fault = None;
        }
        if fire.is_some() {
            state.served += 1;
            state.fired_on = upload.map(str::to_owned);
        }
        (
            fire.map(|(status, _, pass_on, hold)| (status, pass_on, hold)),
            fire.map_or(length, |(_, read, _, _)| read),
        )
    };
    let mut body = Vec::new();
    let got = (&mut from_client).take(read).read_to_end(&mut body);
    if let Some(path) = upload {
        let mut state = state.lock().unwrap();
        let seen = state.uploads.entry(path.to_owned()).or_default();
        seen.body_bytes += body.len() as u64;
        if let Some(digest) = query.split('&').find_map(|kv| kv.strip_prefix("digest=")) {
            seen.digest = Some(digest.replace("%3A", ":"));
        }
        if method == "PATCH" {
            let range = head.lines().find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("content-range"))
                    .map(|(_, v)| v.trim())
            });
            seen.ranges.push(range.unwrap_or("(none)").to_owned());
        }
    }
    if got.is_err() {
        return;
    }
    match fire {
        // Held until the client goes away (its end of the connection closes).
        Some((_, _, true)) => {
            let _ = std::io::copy(&mut from_client, &mut std::io::sink());
            return;
        }
        // The connection closes unanswered.
        Some((None, false, _)) => return,
        // The registry's too, after what was read.
        Some((None, true, _)) => {}
        Some((Some(status), _, _)) => {
            let reason =
                if status == 416 { "Requested Range Not Satisfiable" } else { "Internal Server Error" };
            let error = r#"{"errors":[{"code":"UNKNOWN","message":"injected by the test's proxy"}]}"#;
            let _ = write!(
                to_client,
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{error}",
                error.len()
            );
            return;
        }
        None => {}
    }
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
    let head: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect();
    if server.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes()).is_err()
        || server.write_all(&body).is_err()
    {
        return;
    }
    if fire.is_some() {
        // The registry sees the request end short; the client's connection is closed once the
        // registry has answered, done with what it got.
        let _ = server.shutdown(std::net::Shutdown::Write);
        let _ = std::io::copy(&mut server, &mut std::io::sink());
        return;
    }
    // The registry closes after its answer (Connection: close), and says so to the client,
    // which comes back on a new connection.
    let _ = std::io::copy(&mut server, &mut to_client);
}
